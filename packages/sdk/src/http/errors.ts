import { DatabaseError, OnePipeError, stderrLogger, type Logger } from '@onepipe/core'
import type { Context } from 'hono'
import { APIError } from './api-error.js'
import { requestIdOf } from './request-id.js'

/**
 * Builds a JSON error response in OnePipe's one error shape:
 * `{ "error": { "code", "message", "details"?, "requestId" } }`, with the
 * request id echoed in `x-request-id`.
 *
 * @example
 * ```ts
 * return errorResponse(404, 'NOT_FOUND', 'No order 7', requestId)
 * ```
 */
export function errorResponse(status: number, code: string, message: string, requestId: string, details?: Record<string, unknown>, headers?: Record<string, string>): Response {
  const body = JSON.stringify({ error: { code, message, ...(details ? { details } : {}), requestId } })
  return new Response(body, { status, headers: { 'content-type': 'application/json; charset=utf-8', 'x-request-id': requestId, ...headers } })
}

/**
 * The one way every OnePipe route (REST, `/rpc/*`, `/__onepipe/*`, the app's
 * fallbacks) turns a thrown value into a response. A client error (a
 * OnePipeError below 500) is answered as it is; anything else is logged with
 * the request id and answered without internals: a OnePipeError keeps its
 * code (`DB_UNAVAILABLE` tells a client to retry), any other error becomes
 * `500 INTERNAL`.
 *
 * @example
 * ```ts
 * app.post('/rpc/charge', async (c) => {
 *   try { return c.json(await charge(c)) } catch (e) { return respondError(c, e, logger) }
 * })
 * ```
 */
export function respondError(c: Context, e: unknown, logger: Logger = stderrLogger, requestId: string = requestIdOf(c)): Response {
  if (e instanceof OnePipeError && e.status < 500) {
    // A value the database refused is the client's to fix, but may also be a
    // handler's bug (a division by zero): keep a trace of it.
    if (e instanceof DatabaseError) logger.warn({ err: e, requestId, method: c.req.method, path: c.req.path }, 'the database refused a value')
    const headers = e.status === 413 ? { connection: 'close' } : undefined
    return errorResponse(e.status, e.code, e.message, requestId, e.details, headers)
  }
  if (e instanceof APIError) {
    // A 5xx the handler chose to answer (the shop is closed, try later): its message is meant for the client.
    logger.warn({ code: e.code, status: e.status, requestId, method: c.req.method, path: c.req.path, msg: e.message }, 'request answered with an error status')
    return errorResponse(e.status, e.code, e.message, requestId, e.details, e.retryable ? { 'retry-after': '1' } : undefined)
  }
  logger.error({ err: e, requestId, method: c.req.method, path: c.req.path }, 'request failed')
  if (e instanceof OnePipeError) {
    return errorResponse(e.status, e.code, e.retryable ? 'The service is temporarily unavailable; retry later' : 'Internal server error', requestId, undefined, e.retryable ? { 'retry-after': '1' } : undefined)
  }
  return errorResponse(500, 'INTERNAL', 'Internal server error', requestId)
}

/**
 * Wraps a route handler so anything it throws goes out through
 * {@link respondError}: the one error path, with the request id.
 *
 * @example
 * ```ts
 * const route = withErrors(logger)
 * app.get('/__onepipe/cron', route(async (c) => c.json({ jobs: await list() })))
 * ```
 */
export function withErrors(logger: Logger): (fn: (c: Context) => Promise<Response>) => (c: Context) => Promise<Response> {
  return (fn) => async (c) => {
    try {
      return await fn(c)
    } catch (e) {
      return respondError(c, e, logger)
    }
  }
}
