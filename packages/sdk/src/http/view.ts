import type { Context } from 'hono'
import { headerOf } from './headers.js'

/**
 * What authenticating a request reads of it, without building a whole Fetch
 * `Request`: on @hono/node-server, touching `c.req.raw.headers` converts
 * every header of Node's request, which costs more than a small handler.
 * `key` is the same object for every view of one request (for memoizing).
 */
export interface RequestView {
  readonly method: string
  /** A header, by lower-case name. */
  header(name: string): string | undefined
  url(): string
  readonly key: object
}

/**
 * The view of a Hono request.
 *
 * @example
 * ```ts
 * const user = await auth.authenticateView(requestView(c))
 * ```
 */
export function requestView(c: Context): RequestView {
  const incoming = (c.env as { incoming?: object } | undefined)?.incoming
  return { method: c.req.method, header: (n) => headerOf(c, n), url: () => c.req.url, key: incoming ?? c.req.raw }
}

/**
 * The view of a Fetch `Request`.
 *
 * @example
 * ```ts
 * fetchView(new Request('http://x/api', { headers: { authorization: 'Bearer …' } }))
 * ```
 */
export function fetchView(req: Request): RequestView {
  return { method: req.method, header: (n) => req.headers.get(n) ?? undefined, url: () => req.url, key: req }
}
