import type { Context } from 'hono'

type NodeEnv = { incoming?: { headers: Record<string, string | string[] | undefined> } } | undefined

/**
 * One request header, read from Node's already-parsed headers when running
 * on @hono/node-server. `c.req.header()` there first builds a whole Fetch
 * Headers object, which costs more than a small handler; this does not.
 * `name` must be lower-case.
 *
 * @example
 * ```ts
 * const type = headerOf(c, 'content-type') ?? ''
 * ```
 */
export function headerOf(c: Context, name: string): string | undefined {
  const incoming = (c.env as NodeEnv)?.incoming
  if (incoming) {
    const v = incoming.headers[name]
    return Array.isArray(v) ? v.join(', ') : v
  }
  return c.req.header(name)
}
