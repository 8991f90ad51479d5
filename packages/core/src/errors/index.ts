import { recordable, safeString } from './record.js'

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
 * A value did not match its schema, or cannot be stored as it is. Carries
 * every failing field path. Never retried. A caller's input is a 400
 * `VALIDATION_FAILED`; a value the app itself produced (a step or handler
 * result) keeps the same type with `status: 500` and its own code, since the
 * client cannot fix it.
 *
 * @example
 * ```ts
 * throw new ValidationError('order', [{ path: 'qty', message: 'Expected number' }])
 * throw new ValidationError('result of step "charge"', issues, { code: 'INVALID_RESULT', status: 500 })
 * ```
 */
export class ValidationError extends OnePipeError {
  readonly issues: ValidationIssue[]
  constructor(subject: string, issues: ValidationIssue[], options: { code?: string; status?: number } = {}) {
    const first = issues[0]
    const where = first ? ` at "${first.path || '(root)'}": ${first.message}` : ''
    const fix = (options.status ?? 400) < 500 ? 'Fix the value and send it again.' : 'Change the code that produces it.'
    super(options.code ?? 'VALIDATION_FAILED', `Invalid ${subject}${where}. ${fix}`, {
      status: options.status ?? 400,
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
 * Serializes any thrown value to a plain object that can always be stored
 * and later rebuilt with {@link deserializeError}, keeping name, message,
 * code, retryability and details. A thrown non-`Error` keeps its fields too:
 * `throw { code: 'CARD_DECLINED', reason: 'expired' }` records code
 * `CARD_DECLINED` and details `{ reason: 'expired' }` (not "[object Object]"),
 * and so does an object without a prototype. Strings are made storable (NUL
 * and lone surrogates escaped, long ones cut), so recording a failure never
 * fails in turn.
 *
 * @example
 * ```ts
 * await db.query('UPDATE t SET error = $1', [JSON.stringify(serializeError(e))])
 * serializeError({ code: 'CARD_DECLINED', reason: 'expired' })
 * // { name: 'Error', code: 'CARD_DECLINED', message: 'CARD_DECLINED', status: 500, retryable: true, details: { reason: 'expired' } }
 * ```
 */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof OnePipeError) {
    return {
      name: safeString(err.name),
      code: safeString(err.code),
      message: safeString(err.message),
      status: err.status,
      retryable: err.retryable,
      ...(err.details === undefined ? {} : { details: recordable(err.details) as Record<string, unknown> }),
    }
  }
  if (err instanceof Error) {
    const own = fieldsOf(err, ['name', 'message', 'stack', 'code', 'cause'])
    const c = (err as { code?: unknown }).code
    const code = typeof c === 'string' && c !== '' ? c : 'UNCAUGHT'
    return { name: safeString(err.name), code: safeString(code), message: safeString(err.message), status: 500, retryable: isRetryable(err), ...(own ? { details: own } : {}) }
  }
  if (typeof err === 'object' && err !== null) {
    const o = err as Record<string, unknown>
    const str = (k: string) => (typeof o[k] === 'string' && o[k] !== '' ? (o[k]) : undefined)
    const code = str('code')
    const message = str('message') ?? str('reason') ?? code ?? 'a non-Error value was thrown'
    const own = fieldsOf(o, ['name', 'message', 'code'])
    return { name: safeString(str('name') ?? 'Error'), code: safeString(code ?? 'UNCAUGHT'), message: safeString(message), status: 500, retryable: true, ...(own ? { details: own } : {}) }
  }
  return { name: 'Error', code: 'UNCAUGHT', message: safeString(typeof err === 'symbol' ? err.toString() : String(err)), status: 500, retryable: true }
}

/** The storable own fields of a thrown object, except `skip`; undefined when none. */
function fieldsOf(o: object, skip: string[]): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {}
  let any = false
  for (const k of Object.keys(o)) {
    if (skip.includes(k)) continue
    out[k] = (o as Record<string, unknown>)[k]
    any = true
  }
  return any ? (recordable(out) as Record<string, unknown>) : undefined
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

/** The classes a stored error is rebuilt as, by name, so `instanceof` holds after a replay. */
const REBUILT: Record<string, { prototype: OnePipeError }> = {
  TerminalError,
  TransportError,
  ConfigError,
  ConflictError,
  NotFoundError,
  TimeoutError,
  ValidationError,
  PayloadTooLargeError,
}

/**
 * Rebuilds an error stored by {@link serializeError}: the same name, code,
 * message, status, retryability and details, and, for OnePipe's own error
 * classes, the same class (a replayed `TerminalError` is a `TerminalError`,
 * a `ValidationError` keeps its `issues`).
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
  const cls = Object.hasOwn(REBUILT, s.name) ? REBUILT[s.name] : undefined
  if (cls) {
    Object.setPrototypeOf(e, cls.prototype)
    const issues = (s.details as { issues?: unknown } | undefined)?.issues
    if (s.name === 'ValidationError') Object.defineProperty(e, 'issues', { value: Array.isArray(issues) ? issues : [], enumerable: true })
    const limit = (s.details as { limitBytes?: unknown } | undefined)?.limitBytes
    if (s.name === 'PayloadTooLargeError') Object.defineProperty(e, 'limitBytes', { value: typeof limit === 'number' ? limit : 0, enumerable: true })
  }
  e.name = s.name
  return e
}

export { recordable }
