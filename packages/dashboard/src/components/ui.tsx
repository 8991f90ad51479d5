import type { ButtonHTMLAttributes, InputHTMLAttributes, ReactNode, SelectHTMLAttributes, TextareaHTMLAttributes } from 'react'

const variants = {
  primary: 'bg-blue-700 text-white hover:bg-blue-800 border border-blue-700',
  secondary: 'bg-white text-gray-800 hover:bg-gray-100 border border-gray-400',
  danger: 'bg-red-700 text-white hover:bg-red-800 border border-red-700',
}

export function Button({ variant = 'secondary', className = '', type = 'button', ...rest }: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: keyof typeof variants }) {
  return (
    <button
      type={type}
      className={`inline-flex items-center gap-1 rounded px-3 py-1.5 text-sm font-medium focus:outline-none focus-visible:ring-2 focus-visible:ring-blue-600 focus-visible:ring-offset-1 disabled:cursor-not-allowed disabled:opacity-60 ${variants[variant]} ${className}`}
      {...rest}
    />
  )
}

const control = 'block w-full rounded border border-gray-400 bg-white px-2 py-1.5 text-sm text-gray-900 focus:border-blue-600 focus:outline-none focus:ring-1 focus:ring-blue-600'

/** A labelled control: every input carries its visible label. */
export function Field({ label, hint, children, className = '' }: { label: string; hint?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <label className={`block text-sm ${className}`}>
      <span className="mb-1 block font-medium text-gray-800">{label}</span>
      {children}
      {hint && <span className="mt-1 block text-xs text-gray-600">{hint}</span>}
    </label>
  )
}

export const Input = ({ className = '', ...p }: InputHTMLAttributes<HTMLInputElement>) => <input className={`${control} ${className}`} {...p} />
export const Select = ({ className = '', ...p }: SelectHTMLAttributes<HTMLSelectElement>) => <select className={`${control} ${className}`} {...p} />
export const TextArea = ({ className = '', ...p }: TextareaHTMLAttributes<HTMLTextAreaElement>) => (
  <textarea className={`${control} font-mono ${className}`} spellCheck={false} {...p} />
)

export function PageTitle({ children, actions }: { children: ReactNode; actions?: ReactNode }) {
  return (
    <div className="mb-4 flex flex-wrap items-center justify-between gap-3">
      <h1 className="text-2xl font-semibold text-gray-900">{children}</h1>
      {actions && <div className="flex flex-wrap gap-2">{actions}</div>}
    </div>
  )
}

export function Section({ title, children, actions, testId }: { title: string; children: ReactNode; actions?: ReactNode; testId?: string }) {
  return (
    <section className="mb-6 rounded border border-gray-300 bg-white p-4" data-testid={testId}>
      <div className="mb-3 flex flex-wrap items-center justify-between gap-2">
        <h2 className="text-lg font-semibold text-gray-900">{title}</h2>
        {actions && <div className="flex flex-wrap gap-2">{actions}</div>}
      </div>
      {children}
    </section>
  )
}

export const Loading = ({ what = 'Loading' }: { what?: string }) => (
  <p className="text-sm text-gray-700" role="status">
    {what}…
  </p>
)

export const Empty = ({ children }: { children: ReactNode }) => <p className="text-sm text-gray-700">{children}</p>

/** Label/value pairs; a definition list of dt/dd pairs wrapped in divs, as the HTML spec allows. */
export function Facts({ items }: { items: [string, ReactNode][] }) {
  return (
    <dl className="grid grid-cols-1 gap-x-6 gap-y-2 text-sm sm:grid-cols-2 lg:grid-cols-3">
      {items.map(([k, v]) => (
        <div key={k} className="min-w-0">
          <dt className="text-gray-600">{k}</dt>
          <dd className="break-words text-gray-900">{v ?? '—'}</dd>
        </div>
      ))}
    </dl>
  )
}

/** A select of plain names; `any` adds a first, empty choice. */
export function Choice({ label, value, onChange, options, any, testId, className }: { label: string; value: string | undefined; onChange: (v: string) => void; options: string[]; any?: string; testId: string; className?: string }) {
  return (
    <Field label={label} {...(className ? { className } : {})}>
      <Select value={value ?? ''} onChange={(e) => onChange(e.target.value)} data-testid={testId}>
        {any !== undefined && <option value="">{any}</option>}
        {options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </Select>
    </Field>
  )
}
