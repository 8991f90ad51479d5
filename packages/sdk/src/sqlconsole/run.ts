import { DatabaseError, ident, OnePipeError, TerminalError, ValidationError, type Database, type Queryable } from '@onepipe/core'
import { checkSelect, statementCount, type CheckedSelect } from './validate.js'

/**
 * The most rows one console query may ask for (`maxRows`, 10,000).
 *
 * @example
 * ```ts
 * await runReadOnlyQuery(db, sql, { maxRows: Math.min(wanted, SQL_CONSOLE_MAX_ROWS) })
 * ```
 */
export const SQL_CONSOLE_MAX_ROWS = 10_000

/**
 * The longest statement timeout a console query may be given (`timeoutMs`, 300,000 ms).
 *
 * @example
 * ```ts
 * await runReadOnlyQuery(db, sql, { timeoutMs: SQL_CONSOLE_MAX_TIMEOUT_MS })
 * ```
 */
export const SQL_CONSOLE_MAX_TIMEOUT_MS = 300_000

/**
 * On the embedded engine a running statement cannot be interrupted (PGlite
 * runs inside this process's thread and never sees a timer), so a query is
 * refused before it starts when PostgreSQL's planner estimates more work than
 * this many cost units per millisecond of the timeout. Measured on PGlite:
 * one cost unit takes about 0.01–0.05 ms, so this leaves a margin of about 2.
 */
const EMBEDDED_COST_PER_MS = 20

/** How a console query runs. */
export interface SqlConsoleOptions {
  /** The schema unqualified names resolve in (default: the Database's own schema, else its connection's search_path). */
  schema?: string
  /**
   * Whether the query may read only `schema` (a tenant's): tables, views and
   * functions of other schemas, system catalogs and `pg_` functions that read
   * the server's state are refused, and the search path holds that schema
   * alone. Default false.
   */
  confine?: boolean
  /** Statement timeout in ms, 1–300,000 (default 5,000). */
  timeoutMs?: number
  /** Rows returned at most, 1–10,000 (default 1,000); more sets `truncated`. */
  maxRows?: number
}

/** One column of a console result, in the query's order. */
export interface SqlConsoleColumn {
  name: string
  /** PostgreSQL's name of its type, as `format_type` spells it (`integer`, `timestamp with time zone`). */
  type?: string
}

/** What a console query answers. */
export interface SqlConsoleResult {
  columns: SqlConsoleColumn[]
  /** One array per row, values in `columns` order (two columns may share a name). */
  rows: unknown[][]
  /** Whether the query had more rows than `maxRows`. */
  truncated: boolean
  /** Time spent in the database, in ms. */
  ms: number
}

function intOption(value: number | undefined, path: string, fallback: number, max: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1 || value > max) throw new ValidationError('SQL console options', [{ path, message: `must be an integer from 1 to ${max}, got ${String(value)}` }])
  return value
}

/**
 * A query text built around the caller's statement. The statement stands on
 * lines of its own, so a trailing `-- comment` cannot swallow the closing
 * parenthesis; `at` is where it starts, to map an error position back.
 */
interface Wrapped {
  text: string
  at: number
}

function around(before: string, q: CheckedSelect, after: string): Wrapped {
  const head = `${before}(\n`
  return { text: `${head}${q.text}\n)${after}`, at: head.length }
}

/** The server's 1-based error position mapped onto the caller's SQL, when it falls inside it. */
function positionIn(e: DatabaseError, w: Wrapped | undefined, q: CheckedSelect, sql: string): number | undefined {
  const raw = Number((e.cause as { position?: unknown } | undefined)?.position)
  if (w === undefined || !Number.isInteger(raw)) return undefined
  const p = raw - w.at + q.offset
  return p >= 1 && p <= sql.length ? p : undefined
}

/** SQLSTATE classes that are the server's trouble, not the query's: left to the usual 5xx handling. */
const SERVER_CLASSES = new Set(['08', '53', '57', '58', 'XX', 'F0', 'HV'])

function mapQueryError(e: unknown, w: Wrapped | undefined, q: CheckedSelect, sql: string, timeoutMs: number): unknown {
  if (!(e instanceof DatabaseError) || e.retryable) return e
  const state = e.sqlState ?? ''
  const position = positionIn(e, w, q, sql)
  const details = { sqlState: state, ...(position === undefined ? {} : { position }) }
  if (state === '57014' && /statement timeout/i.test(e.message)) {
    // 400, not 408: the query must change to succeed, and some clients resend a request answered 408.
    return new TerminalError('QUERY_TIMEOUT', `The query ran past its ${timeoutMs} ms statement timeout and was stopped; narrow it (a WHERE, a LIMIT) or raise the timeout`, { status: 400, details: { timeoutMs }, cause: e })
  }
  if (state === '25006') return new TerminalError('QUERY_READ_ONLY', `The query tried to write (${e.message}); the SQL console only reads`, { status: 403, details, cause: e })
  if (state === '42501') return new TerminalError('QUERY_PERMISSION_DENIED', `${e.message}; the database role of this app may not read it`, { status: 403, details, cause: e })
  if (SERVER_CLASSES.has(state.slice(0, 2))) return e
  return new TerminalError('QUERY_FAILED', position === undefined ? e.message : `${e.message} (at character ${position})`, { status: 400, details, cause: e })
}

/** A value as plain JSON, with what JSON cannot hold spelled as PostgreSQL prints it. */
function plain(v: unknown): unknown {
  if (v === null || v === undefined) return null
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString()
  if (v instanceof Uint8Array) return `\\x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v)
  if (Array.isArray(v)) return v.map(plain)
  return v
}

/** An int8 read as text: a number when it is exactly one, else the digits as a string. */
function int8(v: unknown): unknown {
  if (typeof v !== 'string') return plain(v)
  const n = Number(v)
  return Number.isSafeInteger(n) ? n : v
}

/** Reads `{"a":null,"b":null}` (a row of NULLs as row_to_json prints it) keeping every key, duplicates and order included. */
function keysOf(json: string): string[] {
  const keys: string[] = []
  const key = /"((?:[^"\\]|\\.)*)":null[,}]/y
  key.lastIndex = 1
  while (key.lastIndex < json.length - 1) {
    const m = key.exec(json)
    if (!m) throw new OnePipeError('SQL_CONSOLE_SHAPE', `Cannot read the result's columns from ${json.slice(0, 200)}`)
    keys.push(JSON.parse(`"${m[1] ?? ''}"`) as string)
  }
  return keys
}

/** The most expensive part of a plan as the embedded engine will run it. */
function plannedCost(plan: unknown): number {
  let worst = 0
  const top = (plan as { Plan?: { 'Total Cost'?: number } }[] | undefined)?.[0]?.Plan
  const stack: unknown[] = [top]
  while (stack.length > 0) {
    const node = stack.pop() as { 'Node Type'?: string; 'Total Cost'?: number; Plans?: unknown[] } | undefined
    if (!node) continue
    // A set-returning function in FROM is computed whole before its first row, whatever LIMIT sits above it.
    if (node === top || node['Node Type'] === 'Function Scan' || node['Node Type'] === 'Table Function Scan') worst = Math.max(worst, node['Total Cost'] ?? 0)
    stack.push(...(node.Plans ?? []))
  }
  return worst
}

/**
 * Runs one read-only `SELECT` for an operator's console. The SQL is checked
 * by {@link validateSqlQuery} first, then runs in one transaction that is
 * `READ ONLY`, has `statement_timeout` set, and has `search_path` set to
 * `schema`, all with `SET LOCAL`, so nothing outlives the transaction on the
 * pooled connection. The statement is wrapped as a subquery so at most
 * `maxRows + 1` rows leave the database.
 *
 * On the embedded engine (PGlite) a running statement cannot be stopped: a
 * query whose planned cost is above 20 units per ms of the timeout is
 * refused before it starts (`QUERY_TOO_EXPENSIVE`); a query the planner
 * underestimates (a runaway `WITH RECURSIVE`) runs to its end.
 *
 * @throws ValidationError `VALIDATION_FAILED` (400) for SQL that is refused
 *   or does not parse, and for options out of range
 * @throws TerminalError `QUERY_TIMEOUT` (400) past the timeout;
 *   `QUERY_TOO_EXPENSIVE` (400) on PGlite as above; `QUERY_READ_ONLY` (403)
 *   when something tried to write (a function of the app's); `QUERY_PERMISSION_DENIED`
 *   (403); `QUERY_FAILED` (400) for any other error of the query (a missing
 *   table, a division by zero) with PostgreSQL's message, `sqlState` and
 *   `position` in the caller's SQL
 * @throws ConfigError `INVALID_IDENTIFIER` for a bad `schema`; DatabaseError /
 *   TransportError when the database itself fails
 *
 * @example
 * ```ts
 * const r = await runReadOnlyQuery(db, 'SELECT id, total FROM orders ORDER BY id', { maxRows: 2 })
 * // { columns: [{ name: 'id', type: 'integer' }, { name: 'total', type: 'numeric' }],
 * //   rows: [[1, '9.50'], [2, '12.00']], truncated: true, ms: 3 }
 * ```
 */
export async function runReadOnlyQuery(db: Database, sql: string, options: SqlConsoleOptions = {}): Promise<SqlConsoleResult> {
  const timeoutMs = intOption(options.timeoutMs, 'timeoutMs', 5000, SQL_CONSOLE_MAX_TIMEOUT_MS)
  const maxRows = intOption(options.maxRows, 'maxRows', 1000, SQL_CONSOLE_MAX_ROWS)
  const schema = options.schema ?? db.schema
  const searchPath = schema === undefined ? undefined : ident(schema)
  if (options.confine === true && schema === undefined) throw new ValidationError('SQL console options', [{ path: 'confine', message: 'needs a schema to confine the query to' }])
  const q = await checkSelect(sql, options.confine === true ? schema : undefined)

  const started = performance.now()
  let running: Wrapped | undefined
  const run = async <T>(tx: Queryable, w: Wrapped): Promise<T[]> => {
    if ((await statementCount(w.text)) !== 1) throw new OnePipeError('SQL_CONSOLE_WRAP', 'The console built a query that is not one statement; nothing was run')
    running = w
    const rows = await tx.query<T>(w.text)
    running = undefined
    return rows
  }
  try {
    return await db.transaction(async (tx) => {
      await tx.execute('SET TRANSACTION READ ONLY')
      await tx.execute(`SET LOCAL statement_timeout = ${timeoutMs}`)
      // The parser read string literals as standard SQL; the server must too, or a backslash could end one early.
      await tx.execute('SET LOCAL standard_conforming_strings = on')
      if (searchPath !== undefined) await tx.execute(`SET LOCAL search_path TO ${searchPath}`)

      if (db.kind === 'pglite') {
        const [explained] = await run<{ 'QUERY PLAN': unknown }>(tx, around('EXPLAIN (FORMAT JSON) SELECT * FROM ', q, ` AS q LIMIT ${maxRows + 1}`))
        const cost = plannedCost(explained?.['QUERY PLAN'])
        const budget = timeoutMs * EMBEDDED_COST_PER_MS
        if (cost > budget) {
          throw new TerminalError('QUERY_TOO_EXPENSIVE', `The query's planned cost (${Math.round(cost)}) is above what ${timeoutMs} ms allows (${budget}); the embedded database cannot stop a running query, so it was not started. Narrow it (a WHERE, a LIMIT)`, {
            status: 400,
            details: { timeoutMs, cost: Math.round(cost), budget },
          })
        }
      }

      // The columns' names, in order and duplicates kept, from one row of NULLs; LIMIT 0 runs nothing of the query.
      // `s.*`, not `s`: a column named s would win over the table alias.
      const [shape] = await run<{ shape: string }>(tx, around('SELECT row_to_json(s.*)::text AS shape FROM (SELECT q.* FROM (VALUES (1)) AS one(x) LEFT JOIN (SELECT * FROM ', q, ' AS q0 LIMIT 0) AS q ON true) AS s'))
      const names = keysOf(shape?.shape ?? '{}')
      // Rows come back under positional names, so two columns of one name both survive.
      const alias = names.length === 0 ? '' : `(${names.map((_, i) => `c${i + 1}`).join(', ')})`
      let types: string[] = []
      if (names.length > 0) {
        const [t] = await run<Record<string, string>>(tx, around(`SELECT ${names.map((_, i) => `pg_typeof(q.c${i + 1})::text AS c${i + 1}`).join(', ')} FROM (VALUES (1)) AS one(x) LEFT JOIN (SELECT * FROM `, q, ` AS q0${alias} LIMIT 0) AS q ON true`))
        types = names.map((_, i) => t?.[`c${i + 1}`] ?? '')
      }
      // int8 leaves the database as text: drivers differ (one rounds past 2^53, one gives text), and a
      // number past 2^53 must never be answered rounded. Safe ones become numbers again below.
      const list = names.length === 0 ? '*' : names.map((_, i) => (types[i] === 'bigint' ? `q.c${i + 1}::text AS c${i + 1}` : `q.c${i + 1}`)).join(', ')
      const rows = await run<Record<string, unknown>>(tx, around(`SELECT ${list} FROM `, q, ` AS q${alias} LIMIT ${maxRows + 1}`))
      const truncated = rows.length > maxRows
      return {
        columns: names.map((name, i) => (types[i] ? { name, type: types[i] } : { name })),
        rows: rows.slice(0, maxRows).map((r) => names.map((_, i) => (types[i] === 'bigint' ? int8(r[`c${i + 1}`]) : plain(r[`c${i + 1}`])))),
        truncated,
        ms: Math.round(performance.now() - started),
      }
    })
  } catch (e) {
    throw mapQueryError(e, running, q, sql, timeoutMs)
  }
}
