import { ConfigError, type CacheLike } from '@onepipe/core'
import { rateLimitMiddleware, trustProxies, type RateLimit } from '@onepipe/sdk'
import type { Hono, MiddlewareHandler } from 'hono'
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
 * Puts OnePipe's protections in front of every route of `app`: security
 * headers on every response (Hono's `secureHeaders`: nosniff, frame
 * denial, HSTS, a strict referrer policy, no `X-Powered-By`), a CORS
 * allow-list, and rate limits with the client address read behind trusted
 * proxies only.
 *
 * @throws ConfigError `INVALID_ORIGIN` for an allowed origin that is not `scheme://host[:port]`
 *
 * @example
 * ```ts
 * applySecurity(app, { rateLimit: [perIp], allowedOrigins: ['https://app.example.com'] }, rt.cache)
 * ```
 */
export function applySecurity(app: Hono, o: SecurityOptions, cache: CacheLike | undefined): void {
  app.use('*', secureHeaders({ crossOriginEmbedderPolicy: false, crossOriginResourcePolicy: false }))
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
