import type { Context } from 'hono'

/**
 * What `serve()` tracks about one request, handed to handlers through the
 * Hono env (`c.env.onepipe`): its id, the matched route pattern for metrics,
 * and whether the response already carries the id.
 */
export interface RequestInfo {
  requestId: string
  route: string | undefined
  idInResponse: boolean
}

/**
 * The request info `serve()` attached, if the request came through it.
 *
 * @example
 * ```ts
 * const info = requestInfo(c)
 * if (info) info.route = '/api/orders/:id'
 * ```
 */
export function requestInfo(c: Context): RequestInfo | undefined {
  return (c.env as { onepipe?: RequestInfo } | undefined)?.onepipe
}
