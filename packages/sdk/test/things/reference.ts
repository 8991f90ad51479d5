// The filter and sort semantics of docs/things.md, evaluated in JavaScript
// over Things as list() returns them: the property test compares list() and
// count() with this. Written from the documented rules, not from the SQL.
import type { Thing, Where } from '@onepipe/sdk'

const MISSING = Symbol('missing')
type Got = unknown

const BUILTIN = new Set(['$id', '$version', '$created_at', '$updated_at', '$deleted_at'])
const TIMES = new Set(['$created_at', '$updated_at', '$deleted_at'])

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The value at a field path, or MISSING: only objects are walked into (never arrays). */
function valueAt(t: Thing, field: string): Got {
  if (BUILTIN.has(field)) return (t as unknown as Record<string, unknown>)[field]
  let cur: unknown = t
  for (const seg of field.split('.')) {
    if (!isObject(cur) || !Object.hasOwn(cur, seg)) return MISSING
    cur = cur[seg]
  }
  return cur
}

/** Strings compare by code point: the order of their UTF-8 bytes. */
export function compareText(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]))
  if (isObject(a) || isObject(b)) {
    if (!isObject(a) || !isObject(b)) return false
    const ka = Object.keys(a)
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]))
  }
  return a === b
}

function eq(field: string, x: Got, v: unknown): boolean {
  if (v === null) return x === MISSING || x === null
  if (TIMES.has(field)) return typeof x === 'string' && Date.parse(x) === Date.parse(v as string)
  return x !== MISSING && jsonEqual(x, v)
}

function range(field: string, op: string, x: Got, v: unknown): boolean {
  let c: number
  if (TIMES.has(field)) {
    if (typeof x !== 'string') return false
    c = Date.parse(x) - Date.parse(v as string)
  } else if (typeof v === 'number') {
    if (typeof x !== 'number') return false
    c = x - v
  } else {
    if (typeof x !== 'string') return false
    c = compareText(x, v as string)
  }
  return op === '$gt' ? c > 0 : op === '$gte' ? c >= 0 : op === '$lt' ? c < 0 : c <= 0
}

function condition(field: string, x: Got, cond: Record<string, unknown>): boolean {
  return Object.entries(cond).every(([op, v]) => {
    switch (op) {
      case '$eq':
        return eq(field, x, v)
      case '$ne':
        return !eq(field, x, v)
      case '$gt':
      case '$gte':
      case '$lt':
      case '$lte':
        return range(field, op, x, v)
      case '$in':
        return (v as unknown[]).some((y) => eq(field, x, y))
      case '$nin':
        return !(v as unknown[]).some((y) => eq(field, x, y))
      case '$exists':
        return (x !== MISSING && !(field === '$deleted_at' && x === null)) === v
      case '$regex':
        return typeof x === 'string' && new RegExp(v as string, 'su').test(x)
      case '$not':
        return !condition(field, x, v as Record<string, unknown>)
    }
    throw new Error(`reference: no operator ${op}`)
  })
}

function isCondition(v: unknown): v is Record<string, unknown> {
  return isObject(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => k.startsWith('$'))
}

/** Whether a Thing matches a filter. */
export function matches(t: Thing, w: Where): boolean {
  return Object.entries(w).every(([key, v]) => {
    if (v === undefined) return true
    if (key === '$and') return (v as Where[]).every((s) => matches(t, s))
    if (key === '$or') return (v as Where[]).some((s) => matches(t, s))
    if (key === '$not') return !matches(t, v as Where)
    const x = valueAt(t, key)
    return isCondition(v) ? condition(key, x, v) : eq(key, x, v)
  })
}

/** A sort key as list() takes it, normalized. */
export interface RefKey {
  field: string
  desc: boolean
}

function rank(x: Got): number {
  if (x === MISSING) return 0
  if (x === null) return 1
  if (typeof x === 'string') return 2
  if (typeof x === 'number') return 3
  if (typeof x === 'boolean') return 4
  return 5
}

function compareBy(field: string, a: Got, b: Got): number {
  if (field === '$id') return compareText(a as string, b as string)
  if (field === '$version') return (a as number) - (b as number)
  if (TIMES.has(field)) {
    // Built-in times: a null $deleted_at sorts first ascending.
    if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1
    return Date.parse(a as string) - Date.parse(b as string)
  }
  const r = rank(a) - rank(b)
  if (r !== 0) return r
  if (typeof a === 'string') return compareText(a, b as string)
  if (typeof a === 'number') return a - (b as number)
  if (typeof a === 'boolean') return Number(a) - Number(b)
  return 0
}

/** Sorts by the keys, then `$id`. */
export function sortThings(ts: Thing[], keys: RefKey[]): Thing[] {
  return [...ts].sort((a, b) => {
    for (const k of keys) {
      const c = compareBy(k.field, valueAt(a, k.field), valueAt(b, k.field))
      if (c !== 0) return k.desc ? -c : c
    }
    return compareText(a.$id, b.$id)
  })
}
