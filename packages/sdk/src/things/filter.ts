// Filters: checked whole before any SQL is written, then compiled to one
// SQL condition whose every value and path is a parameter. The semantics
// (docs/things.md) in short: a field's value is compared only with a value
// of the same JSON type: numbers as numbers, strings by code point (the
// bytes of their UTF-8, "C" collation, the same on every server); `null`
// equals a null or missing field; `$ne`/`$nin`/`$not` are the exact
// negations of `$eq`/`$in`/their condition, so they also match missing
// fields and other types.
import { ValidationError, valueIssues } from '@onepipe/core'
import { dataExpr, parseField, type BuiltinField, type DataField, type Field, type Params } from './paths.js'
import { MAX_REGEX_LENGTH, regexProblem } from './regex.js'

/** The most values in one `$in` or `$nin`. */
export const MAX_IN_VALUES = 1000
/** The most conditions (field operators) in one filter. */
export const MAX_CONDITIONS = 256
/** How deep `$and`, `$or` and `$not` may nest. */
export const MAX_NESTING = 16

const SUBJECT = 'filter'
const OPERATORS = new Set(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists', '$regex', '$not'])
const RANGE = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' } as const
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$/

/** A `$regex` of a compiled filter, for naming it when PostgreSQL refuses it. */
export interface RegexUse {
  path: string
  pattern: string
}

/** A JSON type a filter can require of a field. */
export type ScalarType = 'string' | 'number' | 'boolean'

/** A filter compiled to an SQL condition over `params`. */
export interface CompiledWhere {
  sql: string
  regexes: RegexUse[]
  /**
   * Data fields (by path) that every matching Thing holds with one JSON
   * type, because a condition joined by AND at the top requires it
   * (`amount: { $gt: 100 }`): a sort on them needs no type ranking.
   */
  pinned: Map<string, ScalarType>
}

interface Ctx {
  p: Params
  regexes: RegexUse[]
  conditions: number
  pinned: Map<string, ScalarType>
}

const fail = (path: string, message: string): never => {
  throw new ValidationError(SUBJECT, [{ path, message }])
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

/** A condition object is one whose keys all start with `$`; a plain object without any is a value to compare with. */
function isCondition(v: unknown, at: string): v is Record<string, unknown> {
  if (!isPlainObject(v)) return false
  const keys = Object.keys(v)
  const ops = keys.filter((k) => k.startsWith('$')).length
  if (ops > 0 && ops < keys.length) fail(at, 'mixes operators with plain fields: write either { $op: value } or a value to compare with')
  return ops > 0
}

function checkJson(v: unknown, at: string): void {
  const issues = valueIssues(v)
  if (issues.length > 0) throw new ValidationError(SUBJECT, issues.map((i) => ({ path: i.path ? `${at}.${i.path}` : at, message: i.message })))
}

const negate = (sql: string): string => `NOT COALESCE(${sql}, false)`
const any = (parts: string[]): string => (parts.length === 0 ? 'FALSE' : parts.length === 1 ? (parts[0] as string) : `(${parts.join(' OR ')})`)
const all = (parts: string[]): string => (parts.length === 0 ? 'TRUE' : parts.length === 1 ? (parts[0] as string) : `(${parts.join(' AND ')})`)

// ─── user fields (inside data) ────────────────────────────────────────────────

/**
 * Whether a string equals the text (`#>>`) of some value that is not a
 * string: a number (jsonb writes them without exponent), true, false, an
 * object or an array. Only then does equality on the text need the type
 * checked as well.
 */
function textOfOtherTypes(s: string): boolean {
  return /^-?[0-9]/.test(s) || s === 'true' || s === 'false' || s.startsWith('{') || s.startsWith('[')
}

function dataEq(c: Ctx, f: DataField, v: unknown): string {
  const x = dataExpr(c.p, f)
  if (v === null) return `(${x.json} IS NULL OR ${x.json} = 'null'::jsonb)`
  // Strings through the text form, so a declared index on the field serves it.
  if (typeof v === 'string') return textOfOtherTypes(v) ? `(${x.text} = ${c.p.add(v)}::text AND ${x.type} = 'string')` : `${x.text} = ${c.p.add(v)}::text`
  return `${x.json} = ${c.p.add(JSON.stringify(v))}::text::jsonb`
}

function dataRange(c: Ctx, f: DataField, op: keyof typeof RANGE, v: unknown, at: string): string {
  const x = dataExpr(c.p, f)
  if (typeof v === 'number') return `(${x.type} = 'number' AND ${x.json} ${RANGE[op]} ${c.p.add(JSON.stringify(v))}::text::jsonb)`
  if (typeof v === 'string') return `(${x.type} = 'string' AND ${x.text} ${RANGE[op]} ${c.p.add(v)}::text)`
  return fail(at, 'must be a number or a string')
}

function dataIn(c: Ctx, f: DataField, values: unknown[]): string {
  // An unused placeholder would have no type for PostgreSQL to infer: add the path only when it is used.
  if (values.length === 0) return 'FALSE'
  const x = dataExpr(c.p, f)
  const strings = values.filter((v): v is string => typeof v === 'string')
  const others = values.filter((v) => typeof v === 'number' || typeof v === 'boolean').map((v) => JSON.stringify(v))
  const parts: string[] = []
  if (strings.length > 0) parts.push(strings.some(textOfOtherTypes) ? `(${x.text} = ANY(${c.p.add(strings)}::text[]) AND ${x.type} = 'string')` : `${x.text} = ANY(${c.p.add(strings)}::text[])`)
  if (others.length > 0) parts.push(`${x.json} = ANY(${c.p.add(others)}::text[]::jsonb[])`)
  if (values.includes(null)) parts.push(`(${x.json} IS NULL OR ${x.json} = 'null'::jsonb)`)
  return any(parts)
}

function dataOp(c: Ctx, f: DataField, op: string, v: unknown, at: string): string {
  switch (op) {
    case '$eq':
      checkJson(v, at)
      return dataEq(c, f, v)
    case '$ne':
      checkJson(v, at)
      return negate(dataEq(c, f, v))
    case '$gt':
    case '$gte':
    case '$lt':
    case '$lte':
      checkJson(v, at)
      return dataRange(c, f, op, v, at)
    case '$in':
      return dataIn(c, f, inValues(v, at))
    case '$nin':
      return negate(dataIn(c, f, inValues(v, at)))
    case '$exists':
      return `${dataExpr(c.p, f).json} IS ${exists(v, at) ? 'NOT ' : ''}NULL`
    case '$regex': {
      const x = dataExpr(c.p, f)
      return `(${x.type} = 'string' AND ${x.text} ~ ${regex(c, v, at)}::text)`
    }
  }
  return fail(at, `unknown operator ${JSON.stringify(op)}`)
}

function inValues(v: unknown, at: string): unknown[] {
  if (!Array.isArray(v)) return fail(at, 'must be an array of values')
  if (v.length > MAX_IN_VALUES) fail(at, `has ${v.length} values; at most ${MAX_IN_VALUES}`)
  checkJson(v, at)
  v.forEach((x, i) => {
    if (x !== null && typeof x === 'object') fail(`${at}.${i}`, 'must be a string, number, boolean or null')
  })
  return v as unknown[]
}

function exists(v: unknown, at: string): boolean {
  if (typeof v !== 'boolean') fail(at, 'must be true or false')
  return v as boolean
}

function regex(c: Ctx, v: unknown, at: string): string {
  if (typeof v !== 'string') return fail(at, 'must be a string (a PostgreSQL regular expression)')
  if (v.length > MAX_REGEX_LENGTH) return fail(at, `must be at most ${MAX_REGEX_LENGTH} characters (got ${v.length})`)
  checkJson(v, at)
  const problem = regexProblem(v)
  if (problem !== undefined) fail(at, problem)
  c.regexes.push({ path: at, pattern: v })
  return c.p.add(v)
}

// ─── built-in fields (columns) ────────────────────────────────────────────────

/** A value for a built-in column as a typed placeholder; a value of the wrong type is refused. */
function columnValue(c: Ctx, f: BuiltinField, v: unknown, at: string): string {
  if (f.type === 'text') {
    if (typeof v !== 'string') fail(at, `${f.name} is a string`)
    checkJson(v, at)
    return `${c.p.add(v)}::text`
  }
  if (f.type === 'int') {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(at, `${f.name} is an integer`)
    return `${c.p.add(v)}::bigint`
  }
  if (typeof v !== 'string' || !ISO_TIME.test(v) || Number.isNaN(Date.parse(v))) fail(at, `${f.name} is compared with an ISO 8601 time with its offset, like 2025-01-31T09:00:00.000Z`)
  return `${c.p.add(v)}::timestamptz`
}

function columnEq(c: Ctx, f: BuiltinField, v: unknown, at: string): string {
  if (v === null) return f.nullable ? `${f.column} IS NULL` : 'FALSE'
  return `${f.column} = ${columnValue(c, f, v, at)}`
}

function columnIn(c: Ctx, f: BuiltinField, values: unknown[], at: string): string {
  const parts = values.filter((v) => v !== null).map((v, i) => `${f.column} = ${columnValue(c, f, v, `${at}.${i}`)}`)
  if (values.includes(null) && f.nullable) parts.push(`${f.column} IS NULL`)
  return any(parts)
}

function columnOp(c: Ctx, f: BuiltinField, op: string, v: unknown, at: string): string {
  switch (op) {
    case '$eq':
      return columnEq(c, f, v, at)
    case '$ne':
      return negate(columnEq(c, f, v, at))
    case '$gt':
    case '$gte':
    case '$lt':
    case '$lte':
      return `${f.column} ${RANGE[op]} ${columnValue(c, f, v, at)}`
    case '$in':
      return columnIn(c, f, inValues(v, at), at)
    case '$nin':
      return negate(columnIn(c, f, inValues(v, at), at))
    case '$exists':
      // Only $deleted_at can be missing (null); the others always exist.
      if (!f.nullable) return exists(v, at) ? 'TRUE' : 'FALSE'
      return `${f.column} IS ${exists(v, at) ? 'NOT ' : ''}NULL`
    case '$regex':
      if (f.type !== 'text') return fail(at, `$regex applies to strings; ${f.name} is not one`)
      return `${f.column} ~ ${regex(c, v, at)}::text`
  }
  return fail(at, `unknown operator ${JSON.stringify(op)}`)
}

// ─── structure ────────────────────────────────────────────────────────────────

function scalarType(v: unknown): ScalarType | undefined {
  const t = typeof v
  return t === 'string' || t === 'number' || t === 'boolean' ? t : undefined
}

/** The JSON type a value or condition requires of its field, if it requires one. */
function requiredType(v: unknown, condition: boolean): ScalarType | undefined {
  if (!condition) return scalarType(v)
  for (const [op, x] of Object.entries(v as Record<string, unknown>)) {
    if (op === '$regex') return 'string'
    const t = op === '$eq' || Object.hasOwn(RANGE, op) ? scalarType(x) : undefined
    if (t !== undefined) return t
    if (op === '$in' && Array.isArray(x)) {
      const types = new Set(x.map(scalarType))
      const only = types.size === 1 ? [...types][0] : undefined
      if (only !== undefined) return only
    }
  }
  return undefined
}

function fieldCondition(c: Ctx, f: Field, cond: Record<string, unknown>, at: string, depth: number): string {
  const parts: string[] = []
  for (const [op, v] of Object.entries(cond)) {
    const here = `${at}.${op}`
    if (!OPERATORS.has(op)) fail(here, `unknown operator ${JSON.stringify(op)}; the operators are ${[...OPERATORS].join(', ')}`)
    if (++c.conditions > MAX_CONDITIONS) fail(here, `a filter has at most ${MAX_CONDITIONS} conditions`)
    if (op === '$not') {
      if (depth >= MAX_NESTING) fail(here, `filters nest at most ${MAX_NESTING} deep`)
      if (!isCondition(v, here)) fail(here, 'must be an object of operators, like { $gt: 5 }')
      parts.push(negate(fieldCondition(c, f, v as Record<string, unknown>, here, depth + 1)))
    } else {
      parts.push(f.kind === 'data' ? dataOp(c, f, op, v, here) : columnOp(c, f, op, v, here))
    }
  }
  return all(parts)
}

/** `top`: the filter is part of the AND at the top, so what it requires holds for every match. */
function whereSql(c: Ctx, w: unknown, at: string, depth: number, top: boolean): string {
  if (!isPlainObject(w)) return fail(at, 'a filter must be a plain object of fields')
  if (depth > MAX_NESTING) fail(at, `filters nest at most ${MAX_NESTING} deep`)
  const parts: string[] = []
  for (const [key, v] of Object.entries(w)) {
    const here = at === '' ? key : `${at}.${key}`
    // Refused, not skipped: `{ ownerId: maybeUndefined }` must never quietly become "every owner".
    if (v === undefined) fail(here, 'is undefined: leave the field out to not filter on it, or use null to match a null or missing field')
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(v) || v.length === 0 || v.length > 100) fail(here, 'must be an array of 1 to 100 filters')
      const subs = (v as unknown[]).map((s, i) => whereSql(c, s, `${here}.${i}`, depth + 1, top && key === '$and'))
      parts.push(key === '$and' ? all(subs) : any(subs))
    } else if (key === '$not') {
      parts.push(negate(whereSql(c, v, here, depth + 1, false)))
    } else {
      const f = parseField(key, SUBJECT, here)
      const condition = isCondition(v, here)
      if (condition) {
        parts.push(fieldCondition(c, f, v, here, depth))
      } else {
        if (++c.conditions > MAX_CONDITIONS) fail(here, `a filter has at most ${MAX_CONDITIONS} conditions`)
        parts.push(f.kind === 'data' ? dataOp(c, f, '$eq', v, here) : columnOp(c, f, '$eq', v, here))
      }
      const t = top && f.kind === 'data' ? requiredType(v, condition) : undefined
      if (t !== undefined && !c.pinned.has(f.name)) c.pinned.set(f.name, t)
    }
  }
  return all(parts)
}

/**
 * Checks a whole filter and compiles it to one SQL condition over the
 * table's columns, adding its values and paths to `params`.
 *
 * @throws ValidationError naming the path of the first problem (`where.amount.$gt`): an unknown
 *   operator, a bad field path, a value of the wrong type, more than 1,000 `$in` values, a `$regex`
 *   that is too long or too large
 */
export function compileWhere(where: unknown, params: Params): CompiledWhere {
  const c: Ctx = { p: params, regexes: [], conditions: 0, pinned: new Map() }
  if (where === undefined) return { sql: 'TRUE', regexes: [], pinned: c.pinned }
  return { sql: whereSql(c, where, 'where', 0, true), regexes: c.regexes, pinned: c.pinned }
}
