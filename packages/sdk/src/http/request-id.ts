import { randomUUID } from 'node:crypto'
import type { Context } from 'hono'
import { headerOf } from './headers.js'
import { requestInfo } from './request-info.js'

/**
 * The request id of a request: the one `serve()` assigned (which honours a
 * client's `x-request-id` of up to 200 characters), else the client's, else
 * a new UUID remembered on the context.
 *
 * @example
 * ```ts
 * logger.info({ requestId: requestIdOf(c) }, 'charged')
 * ```
 */
export function requestIdOf(c: Context): string {
  const info = requestInfo(c)
  if (info) return info.requestId
  const set = c.get('requestId' as never) as string | undefined
  if (set) return set
  const id = headerOf(c, 'x-request-id')
  const rid = id && id.length <= 200 ? id : randomUUID()
  c.set('requestId' as never, rid as never)
  return rid
}
