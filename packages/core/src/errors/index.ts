/**
 * One error model for all of OnePipe.
 *
 * Every error a user can catch is a {@link OnePipeError} with a stable string
 * `code`. Whether an operation may be retried is decided by the error type
 * (`retryable`), never by parsing messages: a {@link TerminalError} stops
 * retries at once, a {@link TransportError} (network, database down) is
 * retried. HTTP handlers map `status` to the response code.
 *
 * @example
 * ```ts
 * import { OnePipeError, ValidationError } from '@onepipe/core'
 * try { await orders.append(bad) } catch (e) {
 *   if (e instanceof ValidationError) console.log(e.code, e.issues)
 * }
 * ```
 */
export class OnePipeError extends Error {
  /** Stable, machine-readable code such as `VALIDATION_FAILED`. */
  readonly code: string
  /** HTTP status a server answers with when this error reaches a client. */
  readonly status: number
  /** Whether an automatic retry may succeed. */
  readonly retryable: boolean
  /** Extra facts for logs and JSON bodies; never secrets. */
  readonly details: Record<string, unknown> | undefined

  constructor(
    code: string,
    message: string,
    options: { status?: number; retryable?: boolean; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.status = options.status ?? 500
    this.retryable = options.retryable ?? false
    this.details = options.details
  }

  /** The JSON body an HTTP server sends for this error. */
  toJSON(): { error: { code: string; message: string; details?: Record<string, unknown> } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    }
  }
}

/** One failing field of a validated value. `path` is like `items.0.qty`. */
export interface ValidationIssue {
  path: string
  message: string
}

/**
 * Input did not match its schema. Carries every failing field path.
 *
 * @example
 * ```ts
 * throw new ValidationError('order', [{ path: 'qty', message: 'Expected number' }])
 * ```
 */
export class ValidationError extends OnePipeError {
  readonly issues: ValidationIssue[]
  constructor(subject: string, issues: ValidationIssue[]) {
    const first = issues[0]
    const where = first ? ` at "${first.path || '(root)'}": ${first.message}` : ''
    super('VALIDATION_FAILED', `Invalid ${subject}${where}. Fix the value and send it again.`, {
      status: 400,
      details: { issues },
    })
    this.issues = issues
  }
}

/**
 * A failure that retrying cannot fix (bad input, business rule). Workflows,
 * channels and cron stop retrying as soon as they see one.
 *
 * @example
 * ```ts
 * if (card.declined) throw new TerminalError('CARD_DECLINED', 'The card was declined')
 * ```
 */
export class TerminalError extends OnePipeError {
  constructor(code: string, message: string, options: { status?: number; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(code, message, { ...options, retryable: false, status: options.status ?? 422 })
  }
}

/**
 * A failure of the path to a backing service (database, Redis, streams
 * server, network). Retryable: the same call may succeed later.
 *
 * @example
 * ```ts
 * throw new TransportError('DB_UNAVAILABLE', 'PostgreSQL is unreachable', { cause: err })
 * ```
 */
export class TransportError extends OnePipeError {
  constructor(code: string, message: string, options: { details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(code, message, { ...options, retryable: true, status: 503 })
  }
}

/**
 * A configuration or usage mistake found at build or start time.
 *
 * @example
 * ```ts
 * throw new ConfigError('ONEPIPE_CONFIG', 'REST "orders" has no routes; add one with .get()')
 * ```
 */
export class ConfigError extends OnePipeError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, { status: 500, retryable: false, ...(details ? { details } : {}) })
  }
}

/**
 * The caller's view of the state is stale (version mismatch, duplicate key
 * with different input, fenced-off owner).
 *
 * @example
 * ```ts
 * throw new ConflictError('VERSION_CONFLICT', 'Signal "count" changed; read it again')
 * ```
 */
export class ConflictError extends OnePipeError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, { status: 409, retryable: false, ...(details ? { details } : {}) })
  }
}

/**
 * Something named by the caller does not exist.
 *
 * @example
 * ```ts
 * throw new NotFoundError('WORKFLOW_NOT_FOUND', `No workflow run "${id}"`)
 * ```
 */
export class NotFoundError extends OnePipeError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, { status: 404, retryable: false, ...(details ? { details } : {}) })
  }
}

/**
 * A value or request body is larger than the limit of what receives it
 * (HTTP 413). Nothing was stored; send something smaller, or raise the
 * limit where the primitive documents one.
 *
 * @example
 * ```ts
 * throw new PayloadTooLargeError('request body', 1_048_576)
 * // code PAYLOAD_TOO_LARGE, details { limitBytes: 1048576 }
 * ```
 */
export class PayloadTooLargeError extends OnePipeError {
  readonly limitBytes: number
  constructor(subject: string, limitBytes: number, sizeBytes?: number) {
    super('PAYLOAD_TOO_LARGE', `The ${subject} is larger than ${limitBytes} bytes${sizeBytes === undefined ? '' : ` (${sizeBytes} bytes)`}; send something smaller`, {
      status: 413,
      retryable: false,
      details: { limitBytes, ...(sizeBytes === undefined ? {} : { sizeBytes }) },
    })
    this.limitBytes = limitBytes
  }
}

/**
 * An operation ran past its deadline. Retryable by default.
 *
 * @example
 * ```ts
 * throw new TimeoutError('CHANNEL_TIMEOUT', 'Handler ran past 30s')
 * ```
 */
export class TimeoutError extends OnePipeError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, { status: 504, retryable: true, ...(details ? { details } : {}) })
  }
}

/**
 * Whether an error may succeed when retried: a OnePipeError says so itself;
 * any other error is retryable unless it is a programming error
 * (TypeError, ReferenceError, SyntaxError, RangeError).
 *
 * @example
 * ```ts
 * if (!isRetryable(err)) throw err
 * ```
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof OnePipeError) return err.retryable
  if (err instanceof TypeError || err instanceof ReferenceError || err instanceof SyntaxError || err instanceof RangeError) {
    return false
  }
  return true
}

/**
 * Serializes any thrown value to a plain object that can be stored and later
 * rebuilt with {@link deserializeError}, keeping code and retryability.
 *
 * @example
 * ```ts
 * await db.query('UPDATE t SET error = $1', [JSON.stringify(serializeError(e))])
 * ```
 */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof OnePipeError) {
    return {
      name: err.name,
      code: err.code,
      message: err.message,
      status: err.status,
      retryable: err.retryable,
      ...(err.details === undefined ? {} : { details: err.details }),
    }
  }
  if (err instanceof Error) {
    return { name: err.name, code: 'UNCAUGHT', message: err.message, status: 500, retryable: isRetryable(err) }
  }
  return { name: 'Error', code: 'UNCAUGHT', message: String(err), status: 500, retryable: true }
}

/** A stored error: see {@link serializeError}. */
export interface SerializedError {
  name: string
  code: string
  message: string
  status: number
  retryable: boolean
  details?: Record<string, unknown>
}

/**
 * Rebuilds an error stored by {@link serializeError} as a OnePipeError that
 * keeps the original name, code, status and retryability.
 *
 * @example
 * ```ts
 * throw deserializeError(row.error)
 * ```
 */
export function deserializeError(s: SerializedError): OnePipeError {
  const e = new OnePipeError(s.code, s.message, {
    status: s.status,
    retryable: s.retryable,
    ...(s.details ? { details: s.details } : {}),
  })
  e.name = s.name
  return e
}
