const MAX_RECORD_STRING = 8 * 1024

/** A string that can always be stored: NUL and lone surrogates escaped, cut past 8 KiB. */
export function safeString(s: string): string {
  // Escaped, not replaced: '\ud800' reads back as the six characters \ud800, so nothing is lost silently.
  const t = (s.isWellFormed() ? s : s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`)).replaceAll('\0', '\\u0000')
  return t.length > MAX_RECORD_STRING ? `${t.slice(0, MAX_RECORD_STRING)}… (${t.length - MAX_RECORD_STRING} more characters)` : t
}

function toRecordable(v: unknown, depth: number, seen: Set<object>): unknown {
  switch (typeof v) {
    case 'string':
      return safeString(v)
    case 'number':
      return Number.isFinite(v) ? (Object.is(v, -0) ? 0 : v) : String(v)
    case 'boolean':
      return v
    case 'bigint':
      return `${v}n`
    case 'undefined':
      return null
    case 'function':
      return `[function ${v.name || 'anonymous'}]`
    case 'symbol':
      return safeString(v.toString())
  }
  if (v === null) return null
  const o = v as object
  if (seen.has(o)) return '[circular]'
  if (depth >= 16) return '[nested too deep]'
  if (o instanceof Date) return Number.isNaN(o.getTime()) ? 'Invalid Date' : o.toISOString()
  if (o instanceof Error) return { name: safeString(o.name), message: safeString(o.message) }
  seen.add(o)
  try {
    if (Array.isArray(o)) return o.slice(0, 100).map((x) => toRecordable(x, depth + 1, seen))
    const out: Record<string, unknown> = {}
    let n = 0
    for (const k of Object.keys(o)) {
      if (n++ >= 100) break
      out[safeString(k)] = toRecordable((o as Record<string, unknown>)[k], depth + 1, seen)
    }
    return out
  } finally {
    seen.delete(o)
  }
}

/**
 * A copy of any value that can always be stored: for recording what went
 * wrong (error messages and details), where refusing is not an option.
 * Unrepresentable parts become descriptive strings (`"NaN"`, `"12n"`,
 * `"[circular]"`, ISO dates), NUL and lone surrogates are escaped, long
 * strings and wide or deep structures are cut.
 *
 * @example
 * ```ts
 * recordable({ at: new Date(0), n: NaN, s: 'a\u0000b' }) // { at: '1970-01-01T00:00:00.000Z', n: 'NaN', s: 'a\\u0000b' }
 * ```
 */
export function recordable(value: unknown): unknown {
  return toRecordable(value, 0, new Set())
}
