import { OnePipeError, TransportError } from '../errors/index.js'

const RETRYABLE_STATES = new Set(['40001', '40P01', '55P03', '57P01', '57P02', '57P03', '53300', '08000', '08003', '08006', '08001', '08004'])
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT'])

/**
 * An error reported by PostgreSQL for a statement. `sqlState` is the
 * five-character SQLSTATE. The class decides what it means to a caller, as
 * PostgREST maps them:
 *
 * - `22…` data exception (a NUL in text, a number out of range, a string too
 *   long): code `DB_INVALID_VALUE`, status 400. The value can never be stored.
 * - `23…` integrity violation (unique, foreign key, check, not null): code
 *   `DB_CONSTRAINT`, status 409.
 * - serialization failure, deadlock, lock timeout, too many connections,
 *   shutdown: code `DB_ERROR`, status 503, retryable.
 * - anything else (syntax, missing table, permissions): code `DB_ERROR`,
 *   status 500, a fault in the code or the schema.
 *
 * Only the retryable ones are ever retried.
 *
 * @example
 * ```ts
 * try { await db.execute('INSERT INTO t(id) VALUES ($1)', [1]) }
 * catch (e) { if (e instanceof DatabaseError && e.sqlState === '23505') … }
 * ```
 */
export class DatabaseError extends OnePipeError {
  readonly sqlState: string | undefined
  readonly constraint: string | undefined
  constructor(message: string, sqlState: string | undefined, constraint: string | undefined, cause: unknown) {
    const retryable = sqlState !== undefined && RETRYABLE_STATES.has(sqlState)
    const cls = sqlState?.slice(0, 2)
    const [code, status] = cls === '22' ? ['DB_INVALID_VALUE', 400] : cls === '23' ? ['DB_CONSTRAINT', 409] : ['DB_ERROR', retryable ? 503 : 500]
    super(code, message, {
      status,
      retryable,
      details: { sqlState, ...(constraint ? { constraint } : {}) },
      cause,
    })
    this.sqlState = sqlState
    this.constraint = constraint
  }
}

/** Maps a driver error to DatabaseError or, for a lost connection, TransportError. */
export function mapDbError(err: unknown, dbName: string): OnePipeError {
  if (err instanceof OnePipeError) return err
  const e = err as { code?: string; message?: string; constraint_name?: string; constraint?: string; errno?: string }
  const code = typeof e?.code === 'string' ? e.code : undefined
  if (code !== undefined && (CONNECTION_CODES.has(code) || code.startsWith('08'))) {
    return new TransportError('DB_UNAVAILABLE', `Database "${dbName}" is unreachable (${code}); check DATABASE_URL and that PostgreSQL is running`, { cause: err })
  }
  const sqlState = code !== undefined && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
  if (sqlState === undefined && err instanceof Error && /connect|ECONNREFUSED|terminat/i.test(err.message)) {
    return new TransportError('DB_UNAVAILABLE', `Database "${dbName}" is unreachable: ${err.message}`, { cause: err })
  }
  return new DatabaseError(e?.message ?? String(err), sqlState, e?.constraint_name ?? e?.constraint, err)
}
