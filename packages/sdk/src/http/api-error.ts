import { OnePipeError } from '@onepipe/core'

/** The string codes an {@link APIError} may carry, with their HTTP status. */
export const API_ERROR_STATUS = {
  BAD_REQUEST: 400,
  VALIDATION_FAILED: 400,
  INVALID_JSON: 400,
  UNAUTHORIZED: 401,
  PAYMENT_REQUIRED: 402,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  GONE: 410,
  PRECONDITION_FAILED: 412,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNPROCESSABLE: 422,
  TOO_MANY_REQUESTS: 429,
  INTERNAL: 500,
  NOT_IMPLEMENTED: 501,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
} as const

/** A code from {@link API_ERROR_STATUS}. */
export type APIErrorCode = keyof typeof API_ERROR_STATUS

/**
 * An error a handler throws to answer with a status and a JSON body
 * `{ error: { code, message, details? } }`. The code decides the status.
 *
 * @example
 * ```ts
 * .get('/:id', async (ctx) => {
 *   const order = await find(ctx.params.id)
 *   if (!order) throw new APIError('NOT_FOUND', `No order ${ctx.params.id}`)
 *   return order
 * })
 * ```
 */
export class APIError extends OnePipeError {
  constructor(code: APIErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, { status: API_ERROR_STATUS[code], retryable: code === 'UNAVAILABLE' || code === 'TIMEOUT' || code === 'TOO_MANY_REQUESTS', ...(details ? { details } : {}) })
  }
}
