import { OnePipeError } from '@onepipe/core'

/**
 * The control plane answered a call with an error status the worker cannot
 * work around. `status` is the HTTP status; `code` is the control plane's own
 * error code when its body had one (`STALE_ATTEMPT`, `VALIDATION_FAILED`…),
 * else `WORKER_HTTP_<status>`. Retryable for 429 and 5xx.
 *
 * @example
 * ```ts
 * worker.on('error', (e) => { if (e instanceof WorkerHttpError && e.status === 403) alert(e.message) })
 * ```
 */
export class WorkerHttpError extends OnePipeError {
  /** The `requestId` of the control plane's error body, to find its log line. */
  readonly requestId: string | undefined

  constructor(call: string, status: number, body: unknown) {
    const err = errorBody(body)
    const code = err?.code ?? `WORKER_HTTP_${status}`
    const why = err?.message ?? `HTTP ${status}`
    super(code, `${call} answered ${status}: ${why}`, {
      status,
      retryable: status === 429 || status >= 500,
      ...(err?.details === undefined ? {} : { details: err.details }),
    })
    this.requestId = err?.requestId
  }
}

/**
 * The control plane refused the worker's credentials (401: no, bad or
 * revoked API key) or its access (403: a handler of another application).
 * The worker stops: no retry can fix a key. Codes `WORKER_UNAUTHORIZED`
 * and `WORKER_FORBIDDEN`.
 *
 * @example
 * ```ts
 * await worker.start().catch((e) => { if (e instanceof WorkerAuthError) console.error('check ONEPIPE_API_KEY') })
 * ```
 */
export class WorkerAuthError extends OnePipeError {
  constructor(call: string, status: 401 | 403, body: unknown) {
    const err = errorBody(body)
    const what = status === 401 ? 'refused the API key (check ONEPIPE_API_KEY)' : 'refused access (a handler or pipeline of another application?)'
    super(status === 401 ? 'WORKER_UNAUTHORIZED' : 'WORKER_FORBIDDEN', `${call}: the control plane ${what}${err?.message ? `: ${err.message}` : ''}`, {
      status,
      retryable: false,
      details: { ...(err?.code ? { serverCode: err.code } : {}), ...(err?.requestId ? { requestId: err.requestId } : {}) },
    })
  }
}

/**
 * Why a job's `ctx.signal` was aborted (it is the signal's `reason`):
 * `JOB_CANCELLED` (the pipeline was cancelled), `STALE_ATTEMPT` (the lease
 * ran out or the attempt was superseded), `DEADLINE_EXCEEDED` (the stage's
 * timeout passed) or `WORKER_SHUTTING_DOWN` (`stop()` ran out of time).
 * Whatever the handler does afterwards, its result is not used.
 *
 * @example
 * ```ts
 * ctx.signal.addEventListener('abort', () => console.log((ctx.signal.reason as JobAbortedError).code))
 * ```
 */
export class JobAbortedError extends OnePipeError {
  constructor(code: 'JOB_CANCELLED' | 'STALE_ATTEMPT' | 'DEADLINE_EXCEEDED' | 'WORKER_SHUTTING_DOWN', message: string) {
    super(code, message, { status: code === 'WORKER_SHUTTING_DOWN' ? 503 : 409, retryable: code !== 'JOB_CANCELLED' })
  }
}

interface ErrorBody {
  code?: string
  message?: string
  details?: Record<string, unknown>
  requestId?: string
}

/** The `{ error: { code, message, details, requestId } }` of a protocol error answer, if that is what came. */
export function errorBody(body: unknown): ErrorBody | undefined {
  if (typeof body !== 'object' || body === null) return undefined
  const e = (body as { error?: unknown }).error
  if (typeof e !== 'object' || e === null) return undefined
  const o = e as Record<string, unknown>
  return {
    ...(typeof o.code === 'string' ? { code: o.code } : {}),
    ...(typeof o.message === 'string' ? { message: o.message } : {}),
    ...(typeof o.details === 'object' && o.details !== null ? { details: o.details as Record<string, unknown> } : {}),
    ...(typeof o.requestId === 'string' ? { requestId: o.requestId } : {}),
  }
}
