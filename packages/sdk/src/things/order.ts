// Sort keys and page bounds of list(). A user field sorts by JSON type
// first, then by value within a type, so a field holding numbers in some
// Things and strings in others still has one total order: missing < null <
// strings (by code point) < numbers < false < true < arrays and objects
// (which tie with one another). `desc` reverses all of it. `$id` always
// ends the sort, so a page boundary never splits ties differently twice.
import { ValidationError } from '@onepipe/core'
import type { ScalarType } from './filter.js'
import { dataExpr, parseField, type Params } from './paths.js'
import type { OrderBy } from './types.js'

/** The most sort keys in one `orderBy`. */
export const MAX_ORDER_KEYS = 8
/** The largest `limit` of a page. */
export const MAX_LIMIT = 1000
/** The page size when none is given. */
export const DEFAULT_LIMIT = 100

const SUBJECT = 'list options'

interface Key {
  field: string
  desc: boolean
  at: string
}

function keysOf(orderBy: unknown): Key[] {
  const list = Array.isArray(orderBy) ? (orderBy as unknown[]) : [orderBy]
  if (list.length > MAX_ORDER_KEYS) throw new ValidationError(SUBJECT, [{ path: 'orderBy', message: `at most ${MAX_ORDER_KEYS} sort keys` }])
  return list.map((k, i) => {
    const at = Array.isArray(orderBy) ? `orderBy.${i}` : 'orderBy'
    if (typeof k === 'string') return k.startsWith('-') ? { field: k.slice(1), desc: true, at } : { field: k, desc: false, at }
    if (typeof k === 'object' && k !== null && !Array.isArray(k)) {
      const { field, direction, ...rest } = k as { field?: unknown; direction?: unknown }
      const extra = Object.keys(rest)
      if (extra.length > 0) throw new ValidationError(SUBJECT, [{ path: `${at}.${extra[0]}`, message: 'unknown sort option; a key is { field, direction }' }])
      if (direction !== undefined && direction !== 'asc' && direction !== 'desc') throw new ValidationError(SUBJECT, [{ path: `${at}.direction`, message: "must be 'asc' or 'desc'" }])
      if (typeof field !== 'string') throw new ValidationError(SUBJECT, [{ path: `${at}.field`, message: 'must be a field path' }])
      return { field, desc: direction === 'desc', at }
    }
    throw new ValidationError(SUBJECT, [{ path: at, message: "a sort key is a field path ('-field' for descending) or { field, direction }" }])
  })
}

/** A compiled sort: the ORDER BY list, and the columns it needs computed once per row first. */
export interface CompiledOrder {
  sql: string
  /** `expression AS k0`…: a field read once into a column the sort keys use (see listStatement). */
  columns: string[]
}

/**
 * Compiles `orderBy` to the SQL of an ORDER BY (without the keywords),
 * always ending with `id`. A field the filter pins to one JSON type
 * (`pinned`) sorts by its value alone; any other is read once into a
 * column (`k0`…) and sorted by type rank, then by value within the type.
 *
 * @throws ValidationError naming the key (`orderBy.1.field`) for a bad path or direction, or more than 8 keys
 */
export function compileOrder(orderBy: OrderBy | undefined, p: Params, pinned: ReadonlyMap<string, ScalarType> = new Map()): CompiledOrder {
  const out: string[] = []
  const columns: string[] = []
  let byId = false
  for (const k of orderBy === undefined ? [] : keysOf(orderBy)) {
    const f = parseField(k.field, SUBJECT, k.at)
    const dir = k.desc ? 'DESC' : 'ASC'
    if (f.kind === 'builtin') {
      out.push(f.nullable ? `${f.column} ${dir} NULLS ${k.desc ? 'LAST' : 'FIRST'}` : `${f.column} ${dir}`)
      if (f.column === 'id') {
        byId = true
        break
      }
      continue
    }
    const x = dataExpr(p, f)
    const type = pinned.get(f.name)
    if (type === 'string') {
      out.push(`${x.text} ${dir}`)
    } else if (type !== undefined) {
      // Numbers compare numerically as jsonb, and false < true.
      out.push(`${x.json} ${dir}`)
    } else {
      // Read once per row: repeating the path lookup in every key costs more than the sort itself.
      const col = `k${columns.length}`
      columns.push(`${x.json} AS ${col}`)
      // jsonb orders numbers before booleans, numbers numerically, false before true: one key for both.
      out.push(
        `CASE COALESCE(jsonb_typeof(${col}), '') WHEN '' THEN 0 WHEN 'null' THEN 1 WHEN 'string' THEN 2 WHEN 'number' THEN 3 WHEN 'boolean' THEN 3 ELSE 4 END ${dir}`,
        `(CASE WHEN jsonb_typeof(${col}) = 'string' THEN (${col} #>> '{}') COLLATE "C" END) ${dir}`,
        `(CASE WHEN jsonb_typeof(${col}) IN ('number', 'boolean') THEN ${col} END) ${dir}`,
      )
    }
  }
  if (!byId) out.push('id ASC')
  return { sql: out.join(', '), columns }
}

/**
 * Checks `limit` (1-1000, default 100) and `offset` (0 or more) of a page.
 *
 * @throws ValidationError naming `limit` or `offset`
 */
export function pageOf(limit: unknown, offset: unknown): { limit: number; offset: number } {
  const l = limit ?? DEFAULT_LIMIT
  const o = offset ?? 0
  if (typeof l !== 'number' || !Number.isInteger(l) || l < 1 || l > MAX_LIMIT) throw new ValidationError(SUBJECT, [{ path: 'limit', message: `must be an integer from 1 to ${MAX_LIMIT}` }])
  if (typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0) throw new ValidationError(SUBJECT, [{ path: 'offset', message: 'must be an integer of 0 or more' }])
  return { limit: l, offset: o }
}
