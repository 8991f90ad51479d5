import { ConfigError, type CacheLike } from '@onepipe/core'
import { rateLimitMiddleware, trustProxies, type RateLimit } from '@onepipe/sdk'
import { Hono, type MiddlewareHandler } from 'hono'
import { cors } from 'hono/cors'
import { secureHeaders } from 'hono/secure-headers'

/** The HTTP protections serve() puts in front of every route. */
export interface SecurityOptions {
  /** Budgets every request spends (except /health, /ready, /metrics, /version). */
  rateLimit?: RateLimit | RateLimit[]
  /**
   * Proxies whose `X-Forwarded-For` is believed (addresses, CIDR ranges,
   * `loopback`…); default `ONEPIPE_TRUSTED_PROXIES`, else none.
   */
  trustProxy?: string[]
  /**
   * Origins a browser may call the app from (CORS); default `ALLOWED_ORIGINS`
   * (comma-separated), else none: no CORS headers, same-origin only.
   */
  allowedOrigins?: string[]
}

const PROBES = new Set(['/health', '/ready', '/metrics', '/version'])

/**
 * Puts OnePipe's protections in front of every route of `app`: a CORS
 * allow-list, and rate limits with the client address read behind trusted
 * proxies only. (Security headers are added to every response by serve()'s
 * request wrapper: see {@link securityHeaders}.)
 *
 * @throws ConfigError `INVALID_ORIGIN` for an allowed origin that is not `scheme://host[:port]`
 *
 * @example
 * ```ts
 * applySecurity(app, { rateLimit: [perIp], allowedOrigins: ['https://app.example.com'] }, rt.cache)
 * ```
 */
export function applySecurity(app: Hono, o: SecurityOptions, cache: CacheLike | undefined): void {
  const origins = o.allowedOrigins ?? (process.env.ALLOWED_ORIGINS ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  for (const origin of origins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) throw new ConfigError('INVALID_ORIGIN', `Allowed origin "${origin}" must look like https://app.example.com (scheme and host, no path)`)
  }
  if (origins.length > 0) {
    app.use('*', cors({ origin: origins, credentials: true, allowHeaders: ['content-type', 'authorization', 'x-api-key', 'x-csrf-token', 'idempotency-key', 'last-event-id', 'x-request-id'], exposeHeaders: ['x-request-id', 'retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'location'], maxAge: 600 }))
  }
  const limits = o.rateLimit === undefined ? [] : Array.isArray(o.rateLimit) ? o.rateLimit : [o.rateLimit]
  if (limits.length > 0) {
    const limited = rateLimitMiddleware(limits, { trust: trustProxies(o.trustProxy), ...(cache ? { cache } : {}) })
    const gate: MiddlewareHandler = (c, next) => (PROBES.has(c.req.path) ? next() : limited(c, next))
    app.use('*', gate)
  }
}

/**
 * The headers Hono's `secureHeaders` puts on a response (nosniff, frame
 * denial, HSTS, a strict referrer policy, no `X-Powered-By`…), read once by
 * running it, so serve() can add them to every response in place. As
 * middleware it would turn every answer into a promise and halve the
 * requests a small route serves; the headers are the same either way.
 *
 * @example
 * ```ts
 * const headers = await securityHeaders() // [['x-content-type-options', 'nosniff'], …]
 * ```
 */
export async function securityHeaders(): Promise<[string, string][]> {
  const probe = new Hono()
  probe.use('*', secureHeaders({ crossOriginEmbedderPolicy: false, crossOriginResourcePolicy: false }))
  probe.get('/', (c) => c.body(null, 204))
  const res = await probe.request('/')
  return [...res.headers.entries()].filter(([k]) => k !== 'content-type')
}
