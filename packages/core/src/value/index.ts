import { PayloadTooLargeError, ValidationError, type ValidationIssue } from '../errors/index.js'

/**
 * The largest value OnePipe stores or sends for one item (a flow event, a
 * signal value, a workflow input, a step or channel result, a cron output),
 * measured as its JSON text: 1 MiB. The same on every store, and below the
 * body limit of every HTTP route that takes one.
 */
export const MAX_VALUE_BYTES = 1024 * 1024

/** How deep a value may nest: deeper values are refused rather than overflowing a parser. */
export const MAX_VALUE_DEPTH = 128

const MAX_ISSUES = 10

/** What {@link encodeValue} checks a value for, and how it names a refusal. */
export interface EncodeOptions {
  /** What the value is, for the error message: `flow "orders" event`, `result of step "charge"`. */
  subject: string
  /** Refuse JSON text longer than this many bytes (default {@link MAX_VALUE_BYTES}). */
  maxBytes?: number
  /**
   * Whether a top-level `undefined` is allowed (a function that returns
   * nothing): it encodes to `undefined`, which stores as SQL NULL and reads
   * back as `undefined`. Elsewhere `undefined` has no JSON form.
   */
  allowUndefined?: boolean
  /** Error code and status of a refusal (default `VALIDATION_FAILED`, 400: the caller's value). */
  code?: string
  status?: number
}

const hint: Record<string, string> = {
  Date: 'store date.toISOString() or date.getTime()',
  Map: 'store Object.fromEntries(map)',
  Set: 'store [...set]',
  RegExp: 'store its source string',
  Buffer: "store buf.toString('base64')",
  Uint8Array: 'store it as a base64 string',
}

function describe(v: object): string {
  const ctor = (Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null)?.constructor?.name
  return ctor && ctor !== 'Object' ? ctor : 'object with a custom prototype'
}

function checkString(s: string, path: string, issues: ValidationIssue[], what: string): void {
  if (!s.isWellFormed()) issues.push({ path, message: `${what} holds a lone surrogate (half of a UTF-16 pair), which is not valid Unicode text; repair it with .toWellFormed()` })
  else if (s.includes('\0')) issues.push({ path, message: `${what} holds the NUL character (\\u0000), which PostgreSQL text and jsonb cannot store; remove it` })
}

function at(path: string, key: string | number): string {
  return path === '' ? String(key) : `${path}.${key}`
}

function check(v: unknown, path: string, depth: number, ancestors: Set<object>, issues: ValidationIssue[]): void {
  if (issues.length >= MAX_ISSUES) return
  switch (typeof v) {
    case 'string':
      checkString(v, path, issues, 'the string')
      return
    case 'number':
      if (!Number.isFinite(v)) issues.push({ path, message: `${v} has no JSON form (it would read back as null); store null or a string` })
      else if (Object.is(v, -0)) issues.push({ path, message: '-0 has no JSON form (it would read back as 0); store 0' })
      return
    case 'boolean':
      return
    case 'bigint':
      issues.push({ path, message: 'a BigInt has no JSON form; store it as a string (n.toString())' })
      return
    case 'undefined':
      issues.push({ path, message: 'undefined has no JSON form; store null, or leave the property out' })
      return
    case 'function':
    case 'symbol':
      issues.push({ path, message: `a ${typeof v} has no JSON form` })
      return
  }
  if (v === null) return
  const o = v as object
  if (depth >= MAX_VALUE_DEPTH) {
    issues.push({ path, message: `nests deeper than ${MAX_VALUE_DEPTH} levels` })
    return
  }
  if (ancestors.has(o)) {
    issues.push({ path, message: 'refers back to an object that contains it (a cycle); JSON cannot hold cycles' })
    return
  }
  ancestors.add(o)
  if (Array.isArray(o)) {
    const named = Object.keys(o).find((k) => !/^(0|[1-9]\d*)$/.test(k))
    if (named !== undefined) issues.push({ path: at(path, named), message: 'is a named property of an array, which JSON drops' })
    for (let i = 0; i < o.length && issues.length < MAX_ISSUES; i++) {
      if (!(i in o)) issues.push({ path: at(path, i), message: 'is a hole in a sparse array (it would read back as null); fill it' })
      else if (o[i] === undefined) issues.push({ path: at(path, i), message: 'undefined in an array would read back as null; store null' })
      else check(o[i], at(path, i), depth + 1, ancestors, issues)
    }
  } else {
    const proto = Object.getPrototypeOf(o) as unknown
    if (proto !== Object.prototype && proto !== null) {
      const name = describe(o)
      issues.push({ path, message: `a ${name} has no exact JSON form${hint[name] ? `; ${hint[name]}` : '; store a plain object'}` })
    } else if (typeof (o as { toJSON?: unknown }).toJSON === 'function') {
      issues.push({ path, message: 'has a toJSON method, so it would not read back as it is; store the plain value' })
    } else {
      if (Object.getOwnPropertySymbols(o).length > 0) issues.push({ path, message: 'has symbol keys, which JSON drops' })
      for (const k in o) {
        if (issues.length >= MAX_ISSUES) break
        checkString(k, at(path, k), issues, 'the key')
        const x = (o as Record<string, unknown>)[k]
        // An undefined property is left out, as JSON does: the value reads back equal (toEqual) without it.
        if (x !== undefined) check(x, at(path, k), depth + 1, ancestors, issues)
      }
    }
  }
  ancestors.delete(o)
}

/**
 * Checks a name or key that OnePipe stores as text (a workflow id, a step
 * or signal name, an idempotency key): 1 to `max` characters of valid
 * Unicode without NUL. Two different ids must never be stored as the same
 * text (PostgreSQL turns a lone surrogate into U+FFFD), and NUL cannot be
 * stored at all.
 *
 * @throws ValidationError naming `path` (`code`/`status` as given, default 400 `VALIDATION_FAILED`)
 *
 * @example
 * ```ts
 * checkText(id, { subject: 'workflowId', path: 'workflowId', max: 256 })
 * ```
 */
export function checkText(value: unknown, o: { subject: string; path: string; max: number; code?: string; status?: number }): string {
  const fail = (message: string): never => {
    throw new ValidationError(o.subject, [{ path: o.path, message }], { ...(o.code ? { code: o.code } : {}), ...(o.status ? { status: o.status } : {}) })
  }
  if (typeof value !== 'string' || value.length === 0 || value.length > o.max) return fail(`must be a string of 1-${o.max} characters`)
  if (!value.isWellFormed()) return fail('holds a lone surrogate (half of a UTF-16 pair), which is not valid Unicode text')
  if (value.includes('\0')) return fail('holds the NUL character (\\u0000), which cannot be stored')
  return value
}

/**
 * The issues that would stop `value` from reading back exactly as plain
 * JSON: non-finite numbers, -0, BigInt, functions, symbols, `undefined` in
 * arrays, sparse arrays, class instances (Date, Map, Buffer…), objects with
 * `toJSON`, strings or keys with a lone surrogate or NUL, cycles, nesting
 * deeper than {@link MAX_VALUE_DEPTH}. Empty when it is fine. At most ten.
 *
 * @example
 * ```ts
 * valueIssues({ at: new Date(), n: NaN })
 * // [{ path: 'at', message: 'a Date has no exact JSON form; store date.toISOString() …' }, { path: 'n', … }]
 * ```
 */
export function valueIssues(value: unknown): ValidationIssue[] {
  const issues: ValidationIssue[] = []
  check(value, '', 0, new Set(), issues)
  return issues
}

/**
 * OnePipe's one value rule, applied before anything is stored or sent:
 * a value either round-trips exactly through JSON (reads back deep-equal,
 * `undefined` properties aside, which JSON leaves out) or is refused with a
 * {@link ValidationError} naming every failing path. Returns the JSON text to
 * store, so the value is serialized once.
 *
 * @returns the JSON text, or `undefined` for a top-level `undefined` when `allowUndefined`
 * @throws ValidationError (`o.code`, `o.status`; default 400 `VALIDATION_FAILED`) naming the paths;
 *   PayloadTooLargeError (413) when the text is longer than `o.maxBytes` (with `o.code` set, as for
 *   results, a ValidationError with that code instead: the app produced it, not the caller)
 *
 * @example
 * ```ts
 * const text = encodeValue({ orderId: 7 }, { subject: 'flow "orders" event' }) // '{"orderId":7}'
 * encodeValue({ x: NaN }, { subject: 'signal "count" value' })
 * // throws ValidationError: Invalid signal "count" value at "x": NaN has no JSON form …
 * ```
 */
export function encodeValue(value: unknown, o: EncodeOptions & { allowUndefined: true }): string | undefined
export function encodeValue(value: unknown, o: EncodeOptions): string
export function encodeValue(value: unknown, o: EncodeOptions): string | undefined {
  if (value === undefined && o.allowUndefined) return undefined
  const issues = valueIssues(value)
  if (issues.length > 0) throw new ValidationError(o.subject, issues, { ...(o.code ? { code: o.code } : {}), ...(o.status ? { status: o.status } : {}) })
  const text = JSON.stringify(value)
  const max = o.maxBytes ?? MAX_VALUE_BYTES
  // Each UTF-16 unit is at most 3 UTF-8 bytes: count exactly only when it might matter.
  if (text.length * 3 > max) {
    const bytes = Buffer.byteLength(text, 'utf8')
    if (bytes > max) {
      // A caller's value is a 413; a value the app's own code produced (a result) is that code's bug.
      if (o.code === undefined) throw new PayloadTooLargeError(o.subject, max, bytes)
      throw new ValidationError(o.subject, [{ path: '', message: `is ${bytes} bytes of JSON, more than the ${max}-byte limit of a stored value` }], { code: o.code, ...(o.status ? { status: o.status } : {}) })
    }
  }
  return text
}

/**
 * Reads back what {@link encodeValue} stored (`undefined` for SQL NULL).
 *
 * @example
 * ```ts
 * decodeValue('{"orderId":7}') // { orderId: 7 }
 * ```
 */
export function decodeValue<T = unknown>(text: string | null | undefined): T {
  return (text === null || text === undefined ? undefined : JSON.parse(text)) as T
}
