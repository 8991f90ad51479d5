/** A value as indented JSON; the box scrolls, so it is reachable with the keyboard. */
export function Json({ value, testId, label = 'JSON value' }: { value: unknown; testId?: string; label?: string }) {
  const text = value === undefined ? '—' : JSON.stringify(value, null, 2)
  return (
    <pre className="max-h-80 overflow-auto rounded border border-gray-300 bg-gray-50 p-2 font-mono text-xs text-gray-900" tabIndex={0} aria-label={label} data-testid={testId}>
      {text}
    </pre>
  )
}

/** A short one-line form of a value, for table cells. */
export const brief = (v: unknown, max = 120): string => {
  if (v === null || v === undefined) return '—'
  const s = typeof v === 'string' ? v : JSON.stringify(v)
  return s.length > max ? `${s.slice(0, max)}…` : s
}

/** An error of any primitive (`{ code, message }`, a string, …) in one line. */
export const errorText = (e: unknown): string => {
  if (e === null || e === undefined) return ''
  if (typeof e === 'string') return e
  const o = e as { code?: unknown; name?: unknown; message?: unknown }
  const head = typeof o.code === 'string' ? o.code : typeof o.name === 'string' ? o.name : ''
  const msg = typeof o.message === 'string' ? o.message : ''
  return head && msg ? `${head}: ${msg}` : head || msg || JSON.stringify(e)
}

/** A titled JSON box, for the input, output or error of a run. */
export function JsonPanel({ title, value, testId }: { title: string; value: unknown; testId?: string }) {
  return (
    <div>
      <h3 className="mb-1 text-sm font-semibold">{title}</h3>
      <Json value={value} label={title} {...(testId ? { testId } : {})} />
    </div>
  )
}
