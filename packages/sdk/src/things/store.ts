// The SQL of Things, one statement per function, on `_onepipe_things`
// (packages/core/sql/000015_things.sql). Every value and field path is a
// parameter. The one exception is a declared index (ensureIndex): DDL takes
// no parameters, so its store name, noun and path are checked against
// strict patterns right where they are written into the statement.
import { ConfigError, type Database, type Queryable } from '@onepipe/core'
import { createHash } from 'node:crypto'
import { compileWhere, type CompiledWhere, type RegexUse } from './filter.js'
import { compileOrder } from './order.js'
import type { Gate } from '../flow/pg-store.js'
import { Params, pathProblem } from './paths.js'
import type { OrderBy, Where } from './types.js'

/** A store's name: also the suffix of its flow (`things.<name>`) and written into its index predicates. */
export const STORE_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/
/** A noun (`Customer`). */
export const NOUN = /^[A-Z][A-Za-z0-9]{0,63}$/

/** A stored row. */
export interface ThingRow {
  id: string
  type: string
  data: Record<string, unknown>
  version: number
  created_at: Date
  updated_at: Date
  deleted_at: Date | null
}

/** Which Thing a statement is about. */
export interface Key {
  store: string
  type: string
  id: string
}

const COLUMNS = 'id, type, data, version, created_at, updated_at, deleted_at'
// Milliseconds only: the ISO strings handed out then compare equal to what is stored.
const NOW = "date_trunc('milliseconds', now())"
const KEY = 'things_name = $1 AND type = $2 AND id = $3'

/** Inserts a new Thing; undefined when the id is taken. */
export async function insertThing(q: Queryable, k: Key, dataJson: string): Promise<ThingRow | undefined> {
  const [row] = await q.query<ThingRow>(
    `INSERT INTO _onepipe_things (things_name, type, id, data, version, created_at, updated_at)
     VALUES ($1, $2, $3, $4::text::jsonb, 1, ${NOW}, ${NOW})
     ON CONFLICT (things_name, type, id) DO NOTHING
     RETURNING ${COLUMNS}`,
    [k.store, k.type, k.id, dataJson],
  )
  return row
}

/** One Thing to create, its data as the JSON text to store. */
export interface NewThing {
  type: string
  id: string
  json: string
}

/**
 * The insert of new Things as the gate of Flow.appendAfter (parameters from
 * $4), with each one's `created` event built in SQL from its inserted row, as
 * the transactional path builds it in JavaScript: the same JSON, timestamps
 * in ISO 8601 UTC with milliseconds (what `Date#toISOString` prints). Rows
 * are inserted in key order (two instances inserting the same new ids never
 * wait on each other in a cycle); events are numbered in the order given.
 * An id taken already returns no row, so it gets no event.
 */
export function insertGate(store: string, things: readonly NewThing[]): Gate {
  const iso = (col: string) => `to_char(gate.${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
  // The JSON texts are already checked and encoded: spliced as raw JSON into one array parameter.
  const payload = `[${things.map((t, i) => `{"o":${i},"t":${JSON.stringify(t.type)},"i":${JSON.stringify(t.id)},"d":${t.json}}`).join(',')}]`
  return {
    sql: `INSERT INTO _onepipe_things (things_name, type, id, data, version, created_at, updated_at)
          SELECT $4, x.value->>'t', x.value->>'i', x.value->'d', 1, ${NOW}, ${NOW}
          FROM jsonb_array_elements($5::text::jsonb) AS x(value) ORDER BY x.value->>'t', x.value->>'i'
          ON CONFLICT (things_name, type, id) DO NOTHING
          RETURNING ${COLUMNS}`,
    params: [store, payload],
    event: `jsonb_build_object('type', gate.type || '.created', 'noun', gate.type, 'verb', 'created', 'id', gate.id, 'version', gate.version,
            'data', jsonb_build_object('$id', gate.id, '$type', gate.type, '$version', gate.version, '$created_at', ${iso('created_at')},
                                       '$updated_at', ${iso('updated_at')}, '$deleted_at', NULL) || gate.data)`,
    order: `(SELECT min((x.value->>'o')::int) FROM jsonb_array_elements($5::text::jsonb) AS x(value) WHERE x.value->>'t' = gate.type AND x.value->>'i' = gate.id)`,
  }
}

/** Reads one Thing, soft-deleted or not; `lock` holds its row until the transaction ends. */
export async function selectThing(q: Queryable, k: Key, lock = false): Promise<ThingRow | undefined> {
  const [row] = await q.query<ThingRow>(`SELECT ${COLUMNS} FROM _onepipe_things WHERE ${KEY}${lock ? ' FOR UPDATE' : ''}`, [k.store, k.type, k.id])
  return row
}

/** Replaces the data of a Thing that is not soft-deleted (and has `version`, when given); undefined when none matched. */
export async function updateThing(q: Queryable, k: Key, dataJson: string, version: number | undefined): Promise<ThingRow | undefined> {
  const [row] = await q.query<ThingRow>(
    `UPDATE _onepipe_things SET data = $4::text::jsonb, version = version + 1, updated_at = ${NOW}
     WHERE ${KEY} AND deleted_at IS NULL AND ($5::bigint IS NULL OR version = $5::bigint)
     RETURNING ${COLUMNS}`,
    [k.store, k.type, k.id, dataJson, version ?? null],
  )
  return row
}

/** Soft-deletes (`deleted` true) or restores a Thing that is in the other state (and has `version`, when given). */
export async function setDeleted(q: Queryable, k: Key, deleted: boolean, version: number | undefined): Promise<ThingRow | undefined> {
  const [row] = await q.query<ThingRow>(
    `UPDATE _onepipe_things SET deleted_at = ${deleted ? NOW : 'NULL'}, version = version + 1, updated_at = ${NOW}
     WHERE ${KEY} AND deleted_at IS ${deleted ? '' : 'NOT '}NULL AND ($4::bigint IS NULL OR version = $4::bigint)
     RETURNING ${COLUMNS}`,
    [k.store, k.type, k.id, version ?? null],
  )
  return row
}

/** Deletes a Thing for good (with `version`, when given); answers it as it was. */
export async function deleteThing(q: Queryable, k: Key, version: number | undefined): Promise<ThingRow | undefined> {
  const [row] = await q.query<ThingRow>(
    `DELETE FROM _onepipe_things WHERE ${KEY} AND ($4::bigint IS NULL OR version = $4::bigint) RETURNING ${COLUMNS}`,
    [k.store, k.type, k.id, version ?? null],
  )
  return row
}

/** A list or count query, built and checked, not yet run. */
export interface Statement {
  text: string
  params: unknown[]
  /** The filter's `$regex` patterns: the statement then runs under a timeout. */
  regexes: RegexUse[]
}

/** What a list or count selects. */
export interface Selection {
  store: string
  type: string
  where: Where | undefined
  includeDeleted: boolean
}

function filterOf(s: Selection, p: Params): CompiledWhere {
  const w = compileWhere(s.where, p)
  return { ...w, sql: `things_name = $1 AND type = $2${s.includeDeleted ? '' : ' AND deleted_at IS NULL'} AND ${w.sql}` }
}

/**
 * One page of Things: the whole filter in the WHERE clause, so LIMIT and
 * OFFSET apply to matching rows only. When the sort reads user fields, the
 * matching rows come from a subquery that reads each such field once into a
 * column (`OFFSET 0` keeps PostgreSQL from merging it back and repeating the
 * read in every sort key).
 *
 * @throws ValidationError from checking the filter or the sort
 */
export function listStatement(s: Selection, orderBy: OrderBy | undefined, limit: number, offset: number): Statement {
  const p = new Params([s.store, s.type])
  const f = filterOf(s, p)
  const order = compileOrder(orderBy, p, f.pinned)
  const from = order.columns.length === 0 ? `_onepipe_things WHERE ${f.sql}` : `(SELECT ${COLUMNS}, ${order.columns.join(', ')} FROM _onepipe_things WHERE ${f.sql} OFFSET 0) AS t`
  const text = `SELECT ${COLUMNS} FROM ${from} ORDER BY ${order.sql} LIMIT ${p.add(limit)}::int OFFSET ${p.add(offset)}::bigint`
  return { text, params: p.values, regexes: f.regexes }
}

/** How many Things match. @throws ValidationError from checking the filter */
export function countStatement(s: Selection): Statement {
  const p = new Params([s.store, s.type])
  const f = filterOf(s, p)
  return { text: `SELECT count(*)::int AS n FROM _onepipe_things WHERE ${f.sql}`, params: p.values, regexes: f.regexes }
}

/**
 * Runs `fn` in a transaction whose statements end after `ms` milliseconds
 * (`statement_timeout`, local to it). The embedded engine ignores the
 * setting; there the regex size limit (regex.ts) is what bounds a query.
 */
export async function withStatementTimeout<T>(db: Database, ms: number, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.query("SELECT set_config('statement_timeout', $1, true)", [`${ms}ms`])
    return fn(tx)
  })
}

/** Whether PostgreSQL compiles `pattern` (for naming the `$regex` it refused). */
export async function regexCompiles(q: Queryable, pattern: string): Promise<boolean> {
  try {
    await q.query("SELECT '' ~ $1::text AS ok", [pattern])
    return true
  } catch {
    return false
  }
}

/** The name of the index of a store's noun's field: stable, and at most 63 characters. */
export function indexName(store: string, type: string, path: readonly string[]): string {
  return `_onepipe_things_ix_${createHash('sha256').update(`${store}\0${type}\0${path.join('.')}`).digest('hex').slice(0, 32)}`
}

/**
 * Creates, once, the expression index of a declared field: on its text in
 * "C" order (the form filters compare strings in), then `id`, partial to
 * this store and noun. Serialized across instances by an advisory lock, so
 * two instances starting at once do not race on the same name.
 *
 * @throws ConfigError `THINGS_BAD_INDEX` if a name or path does not match its pattern (never written into SQL then)
 */
export async function ensureIndex(db: Database, store: string, type: string, path: readonly string[]): Promise<void> {
  // Checked again here, where they become SQL text: this is what makes the interpolation safe.
  if (!STORE_NAME.test(store) || !NOUN.test(type) || pathProblem(path.join('.')) !== undefined) {
    throw new ConfigError('THINGS_BAD_INDEX', `Cannot index ${JSON.stringify(path.join('.'))} of ${JSON.stringify(type)} in Things ${JSON.stringify(store)}: a name or path is invalid`)
  }
  const name = indexName(store, type, path)
  await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext('onepipe:things:indexes'))")
    await tx.execute(
      `CREATE INDEX IF NOT EXISTS ${name} ON _onepipe_things (((data #>> '{${path.join(',')}}') COLLATE "C"), id) WHERE things_name = '${store}' AND type = '${type}'`,
    )
  })
}
