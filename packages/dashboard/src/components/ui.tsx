import { createContext, useContext, useEffect, useId, type ComponentProps, type ReactNode } from 'react'

const variants = {
  primary: 'bg-blue-700 text-white hover:bg-blue-800 border border-blue-700',
  secondary: 'bg-white text-gray-800 hover:bg-gray-100 border border-gray-400',
  danger: 'bg-red-700 text-white hover:bg-red-800 border border-red-700',
}

export type Variant = keyof typeof variants

export function Button({ variant = 'secondary', className = '', type = 'button', ...rest }: ComponentProps<'button'> & { variant?: Variant }) {
  return (
    <button
      type={type}
      className={`inline-flex items-center gap-1 rounded px-3 py-1.5 text-sm font-medium focus:outline-none focus-visible:ring-2 focus-visible:ring-blue-600 focus-visible:ring-offset-1 disabled:cursor-not-allowed disabled:opacity-60 ${variants[variant]} ${className}`}
      {...rest}
    />
  )
}

const control = 'block w-full rounded border border-gray-400 bg-white px-2 py-1.5 text-sm text-gray-900 focus:border-blue-600 focus:outline-none focus:ring-1 focus:ring-blue-600'

/** What the control inside a Field is described by: its hint, and its error while it has one. */
const FieldAria = createContext<{ describedBy?: string; invalid: boolean }>({ invalid: false })

type Aria = { 'aria-describedby'?: string | undefined; 'aria-invalid'?: ComponentProps<'input'>['aria-invalid'] }
const useAria = (own: Aria): Aria => {
  const f = useContext(FieldAria)
  return { 'aria-describedby': own['aria-describedby'] ?? f.describedBy, 'aria-invalid': own['aria-invalid'] ?? (f.invalid || undefined) }
}

/**
 * A labelled control: every input carries its visible label. The hint and the
 * error stand outside the label, so they describe the control (aria-describedby)
 * instead of lengthening its name.
 */
export function Field({ label, hint, error, errorTestId, children, className = '' }: { label: string; hint?: ReactNode; error?: string | undefined; errorTestId?: string; children: ReactNode; className?: string }) {
  const id = useId()
  const describedBy = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined
  return (
    <div className={`text-sm ${className}`}>
      <label className="block">
        <span className="mb-1 block font-medium text-gray-800">{label}</span>
        <FieldAria.Provider value={{ ...(describedBy ? { describedBy } : {}), invalid: !!error }}>{children}</FieldAria.Provider>
      </label>
      {hint && (
        <p id={`${id}-hint`} className="mt-1 text-xs text-gray-600">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} role="alert" className="mt-1 text-sm text-red-800" data-testid={errorTestId}>
          {error}
        </p>
      )}
    </div>
  )
}

export function Input({ className = '', ...p }: ComponentProps<'input'>) {
  const aria = useAria(p)
  return <input className={`${control} ${className}`} {...p} {...aria} />
}

export function Select({ className = '', ...p }: ComponentProps<'select'>) {
  const aria = useAria(p)
  return <select className={`${control} ${className}`} {...p} {...aria} />
}

export function TextArea({ className = '', ...p }: ComponentProps<'textarea'>) {
  const aria = useAria(p)
  return <textarea className={`${control} font-mono ${className}`} spellCheck={false} {...p} {...aria} />
}

/** The tab's title: the page, then OnePipe, so a row of tabs tells them apart. */
export function useDocumentTitle(title: string) {
  useEffect(() => {
    document.title = title.trim() ? `${title.trim()} · OnePipe` : 'OnePipe'
  }, [title])
}

const textOf = (n: ReactNode): string => (typeof n === 'string' || typeof n === 'number' ? String(n) : Array.isArray(n) ? n.map(textOf).join('') : '')

/** The page's heading; it names the tab too (`tab` when the heading is not plain text, or says too much). */
export function PageTitle({ children, actions, tab }: { children: ReactNode; actions?: ReactNode; tab?: string }) {
  useDocumentTitle(tab ?? textOf(children))
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
