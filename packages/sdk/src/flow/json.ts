import { ValidationError } from '@onepipe/core'

/** Whether any string (or key) inside a JSON value contains a NUL character. */
function hasNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\0')
  if (Array.isArray(v)) return v.some(hasNul)
  if (typeof v === 'object' && v !== null) return Object.entries(v).some(([k, x]) => k.includes('\0') || hasNul(x))
  return false
}

/**
 * Throws a ValidationError unless `value` can be stored as PostgreSQL jsonb:
 * JSON-serializable and free of NUL characters (which jsonb refuses). Checked
 * before anything is sent, so one bad value never fails a shared statement.
 */
export function checkJson(value: unknown, subject: string): void {
  let json: string
  try {
    json = JSON.stringify(value)
  } catch (e) {
    throw new ValidationError(subject, [{ path: '', message: `not JSON-serializable: ${e instanceof Error ? e.message : String(e)}` }])
  }
  if (json.includes('\\u0000') && hasNul(value)) throw new ValidationError(subject, [{ path: '', message: 'strings must not contain the NUL character (\\u0000)' }])
}
