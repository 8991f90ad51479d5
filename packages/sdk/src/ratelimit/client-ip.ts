import type { IncomingMessage } from 'node:http'
import proxyaddr from 'proxy-addr'
import { ConfigError } from '@onepipe/core'
import type { Context } from 'hono'

/** Decides whether an address is a proxy whose `X-Forwarded-For` may be believed. */
export type TrustProxy = (address: string, hop: number) => boolean

/**
 * Compiles a list of trusted proxies (addresses or CIDR ranges, and the
 * names `loopback`, `linklocal`, `uniquelocal`) as Express does, through
 * `proxy-addr`. An empty list trusts nobody: `X-Forwarded-For` is then
 * ignored, so a client cannot pick its own address.
 *
 * @throws ConfigError `INVALID_TRUSTED_PROXY` for an entry that is not an address or range
 *
 * @example
 * ```ts
 * const trust = trustProxies(['10.0.0.0/8', 'loopback']) // or ONEPIPE_TRUSTED_PROXIES=10.0.0.0/8,loopback
 * ```
 */
export function trustProxies(list: readonly string[] = (process.env.ONEPIPE_TRUSTED_PROXIES ?? '').split(',').map((s) => s.trim()).filter(Boolean)): TrustProxy {
  if (list.length === 0) return () => false
  try {
    return proxyaddr.compile([...list])
  } catch (e) {
    throw new ConfigError('INVALID_TRUSTED_PROXY', `A trusted proxy must be an address or CIDR range (or loopback, linklocal, uniquelocal): ${(e as Error).message}`)
  }
}

type NodeEnv = { incoming?: IncomingMessage } | undefined

/**
 * The client's address: the socket's peer, or, when that peer is a trusted
 * proxy, the nearest untrusted address in `X-Forwarded-For` (read from the
 * right, as each proxy appends). `undefined` when the request did not come
 * over a socket (in-process `app.request()`).
 *
 * @example
 * ```ts
 * const ip = clientIp(c, trust) // "203.0.113.7"
 * ```
 */
export function clientIp(c: Context, trust: TrustProxy): string | undefined {
  const incoming = (c.env as NodeEnv)?.incoming
  if (!incoming?.socket) return undefined
  return proxyaddr(incoming, trust)
}
