import { ValidationError, type Database, type Logger } from '@onepipe/core'
import type { Context, Hono } from 'hono'
import { readJson, requestIdOf, withErrors } from '../http/index.js'
import { AuthError } from '../auth/errors.js'
import { can } from '../auth/roles.js'
import type { AuthUser } from '../rest/auth.js'
import { runReadOnlyQuery, SQL_CONSOLE_MAX_ROWS } from './run.js'
import { SQL_CONSOLE_MAX_SQL_BYTES } from './validate.js'

/** How {@link mountSqlConsoleRoutes} runs the console's queries. */
export interface SqlConsoleRoutesOptions {
  db: Database
  logger: Logger
  /** The schema unqualified names resolve in (default: the Database's own). */
  schema?: string
  /** Statement timeout in ms (default 5,000). */
  timeoutMs?: number
  /**
   * A permission the caller must hold besides what the guard checks
   * (`serve({ sqlConsole: true })` asks `onepipe:admin`: the console reads
   * every table, account tables included).
   */
  permission?: string
  /** Where the route answers (default `/__onepipe/sql`). */
  path?: string
  /**
   * Picks the database per request (a tenant's, confined to its schema);
   * default: `db` with `schema`. Its errors answer as they are (403, 404).
   */
  target?: (c: Context) => Promise<{ db: Database; confine: boolean }>
}

/**
 * Mounts the read-only SQL console for operators (docs/sql-console.md):
 * `POST /__onepipe/sql` with `{ "sql": "SELECT …", "maxRows"?: 1–10000 }`
 * (a body of at most 64 KiB) answers `200 { columns, rows, truncated, ms }`
 * from {@link runReadOnlyQuery}. Errors are OnePipe's one JSON shape with the
 * request id: 400 `VALIDATION_FAILED` for a refused or unparsable query or a
 * bad body, 400 `INVALID_JSON`, 413 `PAYLOAD_TOO_LARGE`, 415 for a body that
 * is not JSON, 400 `QUERY_TIMEOUT` / `QUERY_TOO_EXPENSIVE` / `QUERY_FAILED`,
 * 403 `QUERY_READ_ONLY` / `QUERY_PERMISSION_DENIED`.
 *
 * The route checks no role itself: under `serve()` the guard of
 * `/__onepipe/*` lets only the `operator` role (`onepipe:write`) POST.
 *
 * @example
 * ```ts
 * mountSqlConsoleRoutes(app, { db, logger })
 * // POST /__onepipe/sql { "sql": "SELECT id FROM orders", "maxRows": 2 }
 * // → 200 { "columns": [{ "name": "id", "type": "integer" }], "rows": [[1], [2]], "truncated": true, "ms": 4 }
 * ```
 */
export function mountSqlConsoleRoutes(app: Hono, options: SqlConsoleRoutesOptions): void {
  const { db, logger } = options
  const wrap = withErrors(logger)
  app.post(options.path ?? '/__onepipe/sql', wrap(async (c) => {
    if (options.permission !== undefined && !can(c.get('user' as never) as AuthUser | undefined, options.permission)) {
      throw new AuthError('FORBIDDEN', `The SQL console needs the ${options.permission} permission`)
    }
    const body = await readJson(c, { maxBytes: SQL_CONSOLE_MAX_SQL_BYTES })
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ValidationError('request body', [{ path: '', message: 'must be an object { "sql": "SELECT …", "maxRows"?: number }' }])
    const extra = Object.keys(body).find((k) => k !== 'sql' && k !== 'maxRows')
    if (extra !== undefined) throw new ValidationError('request body', [{ path: extra, message: 'unknown field; the body is { "sql": "SELECT …", "maxRows"?: number } (the timeout is the server\'s)' }])
    const { sql, maxRows } = body as { sql?: unknown; maxRows?: unknown }
    if (typeof sql !== 'string') throw new ValidationError('request body', [{ path: 'sql', message: sql === undefined ? 'is required: one SELECT statement' : `must be a string, got ${sql === null ? 'null' : typeof sql}` }])
    if (maxRows !== undefined && (typeof maxRows !== 'number' || !Number.isSafeInteger(maxRows) || maxRows < 1 || maxRows > SQL_CONSOLE_MAX_ROWS)) {
      throw new ValidationError('request body', [{ path: 'maxRows', message: `must be an integer from 1 to ${SQL_CONSOLE_MAX_ROWS}` }])
    }
    const target = options.target ? await options.target(c) : { db, confine: false }
    const result = await runReadOnlyQuery(target.db, sql, {
      ...(target.confine ? { confine: true } : {}),
      ...(options.schema === undefined || options.target ? {} : { schema: options.schema }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(maxRows === undefined ? {} : { maxRows }),
    })
    // Who read what is worth keeping; the SQL text itself may hold personal data, so only its size.
    logger.info({ requestId: requestIdOf(c), sqlBytes: Buffer.byteLength(sql), rows: result.rows.length, truncated: result.truncated, ms: result.ms }, 'sql console query')
    return c.json(result)
  }))
}
