import { OnePipeError, TransportError } from '../errors/index.js'

const RETRYABLE_STATES = new Set(['40001', '40P01', '55P03', '57P01', '57P02', '57P03', '53300', '08000', '08003', '08006', '08001', '08004'])
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT'])

/**
 * An error reported by PostgreSQL for a statement. `sqlState` is the
 * five-character SQLSTATE (`23505` unique violation…); serialization failures
 * and deadlocks are retryable, everything else is not.
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
    super('DB_ERROR', message, {
      status: 500,
      retryable: sqlState !== undefined && RETRYABLE_STATES.has(sqlState),
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
