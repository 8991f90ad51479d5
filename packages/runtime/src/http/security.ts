import { ConfigError, type CacheLike } from '@onepipe/core'
import { rateLimitMiddleware, trustProxies, type RateLimit } from '@onepipe/sdk'
import { Hono, type Context, type MiddlewareHandler } from 'hono'
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
 * allow-list, and the rate limits keyed by client address (read behind
 * trusted proxies only), before anything else runs. Limits keyed by user,
 * API key or a function of the request need the caller, who is not known
 * yet: they come back as a middleware for the app to put after
 * authentication (`identify` tells the caller where no guard has). (Security
 * headers are added to every response by serve()'s request wrapper: see
 * {@link securityHeaders}.)
 *
 * @throws ConfigError `INVALID_ORIGIN` for an allowed origin that is not `scheme://host[:port]`
 *
 * @example
 * ```ts
 * const perCaller = applySecurity(app, { rateLimit: [perIp, perUser], allowedOrigins: ['https://app.example.com'] }, rt.cache, identifyCaller(guard))
 * app.use('/rpc/*', guardMiddleware(guard, logger))
 * if (perCaller) app.use('*', perCaller)
 * ```
 */
export function applySecurity(app: Hono, o: SecurityOptions, cache: CacheLike | undefined, identify?: (c: Context) => Promise<void>): MiddlewareHandler | undefined {
  const origins = o.allowedOrigins ?? (process.env.ALLOWED_ORIGINS ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  for (const origin of origins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) throw new ConfigError('INVALID_ORIGIN', `Allowed origin "${origin}" must look like https://app.example.com (scheme and host, no path)`)
  }
  if (origins.length > 0) {
    app.use('*', cors({ origin: origins, credentials: true, allowHeaders: ['content-type', 'authorization', 'x-api-key', 'x-csrf-token', 'idempotency-key', 'last-event-id', 'x-request-id'], exposeHeaders: ['x-request-id', 'retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'location'], maxAge: 600 }))
  }
  const limits = o.rateLimit === undefined ? [] : Array.isArray(o.rateLimit) ? o.rateLimit : [o.rateLimit]
  if (limits.length === 0) return undefined
  const trust = trustProxies(o.trustProxy)
  const opts = { trust, ...(cache ? { cache } : {}) }
  const byAddress = limits.filter((l) => l.by === 'ip')
  const byCaller = limits.filter((l) => l.by !== 'ip')
  if (byAddress.length > 0) {
    const limited = rateLimitMiddleware(byAddress, opts)
    const gate: MiddlewareHandler = (c, next) => (PROBES.has(c.req.path) ? next() : limited(c, next))
    app.use('*', gate)
  }
  if (byCaller.length === 0) return undefined
  const limited = rateLimitMiddleware(byCaller, opts)
  return async (c, next) => {
    if (PROBES.has(c.req.path)) return next()
    if (identify) await identify(c)
    return limited(c, next)
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
