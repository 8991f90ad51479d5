import { ConfigError, parseDuration, RedisCache, type CacheLike, type Duration } from '@onepipe/core'
import type { Context, MiddlewareHandler } from 'hono'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible'
import { errorResponse } from '../http/errors.js'
import { requestIdOf } from '../http/request-id.js'
import { clientIp, trustProxies, type TrustProxy } from './client-ip.js'

/** Whose budget a request spends: its client address, its user, its API key's application, or a key you compute. */
export type RateLimitKey = 'ip' | 'user' | 'apiKey' | ((c: Context) => string | undefined)

/** How a {@link RateLimit} is set up. */
export interface RateLimitOptions {
  name: string
  /** Requests allowed per window. */
  points: number
  /** The window, e.g. `'10s'`. */
  durationMs: number
  by: RateLimitKey
  /** Where budgets are kept: Redis (shared by every instance) or memory (this process). */
  cache: CacheLike | undefined
}

/** What a consumed request learns about its budget. */
export interface RateLimitState {
  allowed: boolean
  limit: number
  remaining: number
  /** Milliseconds until the window resets. */
  resetMs: number
}

interface Principal {
  id?: string
  kind?: string
  applicationId?: string
}

/**
 * A token budget per key: `points` requests per window, kept in Redis when
 * the cache is Redis (so N instances share one budget, counted atomically by
 * `rate-limiter-flexible`) and in memory otherwise. Over budget a request is
 * answered `429 RATE_LIMITED` with `Retry-After` (seconds) and the
 * `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` headers of the
 * IETF RateLimit header fields draft, which every allowed response carries
 * too.
 *
 * @example
 * ```ts
 * const perIp = RateLimit.create('api').points(100).per('10s').by('ip').build()
 * await serve({ rest: [orders], rateLimit: [perIp] })
 * ```
 */
export class RateLimit {
  readonly name: string
  readonly points: number
  readonly durationMs: number
  readonly by: RateLimitKey
  #limiter: RateLimiterAbstract | undefined
  readonly #cache: CacheLike | undefined

  constructor(o: RateLimitOptions) {
    this.name = o.name
    this.points = o.points
    this.durationMs = o.durationMs
    this.by = o.by
    this.#cache = o.cache
  }

  /**
   * Starts a builder.
   *
   * @example
   * ```ts
   * RateLimit.create('login').points(10).per('1m').by('ip').build()
   * ```
   */
  static create(name: string): RateLimitBuilder {
    return new RateLimitBuilder(name)
  }

  /** The limiter, made on first use with the cache it was given or the app's (`rt.cache`). */
  limiter(fallback?: CacheLike): RateLimiterAbstract {
    if (this.#limiter) return this.#limiter
    const cache = this.#cache ?? fallback
    const common = { keyPrefix: `onepipe:rl:${this.name}`, points: this.points, duration: Math.max(1, Math.ceil(this.durationMs / 1000)) }
    this.#limiter =
      cache instanceof RedisCache
        ? new RateLimiterRedis({ ...common, storeClient: cache.client, keyPrefix: `${cache.prefix}${common.keyPrefix}` })
        : new RateLimiterMemory(common)
    return this.#limiter
  }

  /**
   * Spends one point of `key`'s budget.
   *
   * @throws TransportError-like errors of the store (Redis down) are rethrown as they are
   *
   * @example
   * ```ts
   * const { allowed, remaining } = await limit.consume('203.0.113.7')
   * ```
   */
  async consume(key: string, fallback?: CacheLike): Promise<RateLimitState> {
    try {
      const r = await this.limiter(fallback).consume(key, 1)
      return { allowed: true, limit: this.points, remaining: r.remainingPoints, resetMs: r.msBeforeNext }
    } catch (e) {
      if (e instanceof RateLimiterRes) return { allowed: false, limit: this.points, remaining: 0, resetMs: e.msBeforeNext }
      throw e
    }
  }

  /** The key of a request, or undefined when the request has none of the kind asked for (it then spends its client address's). */
  keyOf(c: Context, trust: TrustProxy): string {
    const ip = () => `ip:${clientIp(c, trust) ?? 'local'}`
    if (typeof this.by === 'function') return this.by(c) ?? ip()
    const user = c.get('user' as never) as Principal | undefined
    if (this.by === 'user' && user?.id && user.kind !== 'application') return `user:${user.id}`
    if (this.by === 'apiKey' && user?.kind === 'application' && user.applicationId) return `app:${user.applicationId}`
    return ip()
  }
}

/** Fluent configuration for a {@link RateLimit}. */
export class RateLimitBuilder {
  readonly #name: string
  #points = 100
  #durationMs = 10_000
  #by: RateLimitKey = 'ip'
  #cache: CacheLike | undefined

  constructor(name: string) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) throw new ConfigError('INVALID_RATE_LIMIT', `Rate limit name "${name}" must be 1-64 letters, digits, "_", "." or "-"`)
    this.#name = name
  }
  /** Requests allowed per window (default 100). */
  points(n: number): this {
    if (!Number.isInteger(n) || n < 1) throw new ConfigError('INVALID_RATE_LIMIT', `Rate limit "${this.#name}": points must be a whole number of at least 1, got ${n}`)
    this.#points = n
    return this
  }
  /** The window (default 10 s; whole seconds). */
  per(d: Duration): this {
    const ms = parseDuration(d)
    if (ms < 1000) throw new ConfigError('INVALID_RATE_LIMIT', `Rate limit "${this.#name}": the window must be at least 1s`)
    this.#durationMs = ms
    return this
  }
  /** Whose budget: `'ip'` (default), `'user'`, `'apiKey'`, or a function of the request. */
  by(k: RateLimitKey): this {
    this.#by = k
    return this
  }
  /** Keep budgets in this cache (default: the app's cache under serve(), Redis when REDIS_URL is set). */
  cache(c: CacheLike): this {
    this.#cache = c
    return this
  }
  build(): RateLimit {
    return new RateLimit({ name: this.#name, points: this.#points, durationMs: this.#durationMs, by: this.#by, cache: this.#cache })
  }
}

function headers(s: RateLimitState): Record<string, string> {
  return { 'ratelimit-limit': String(s.limit), 'ratelimit-remaining': String(s.remaining), 'ratelimit-reset': String(Math.ceil(s.resetMs / 1000)) }
}

/**
 * Hono middleware spending one point of every limit that applies to the
 * request; the first exhausted one answers 429.
 *
 * @example
 * ```ts
 * app.use('/api/*', rateLimitMiddleware([perIp], { trust: trustProxies(['loopback']), cache }))
 * ```
 */
export function rateLimitMiddleware(limits: readonly RateLimit[], o: { trust?: TrustProxy; cache?: CacheLike } = {}): MiddlewareHandler {
  const trust = o.trust ?? trustProxies()
  return async (c, next) => {
    let tightest: RateLimitState | undefined
    for (const l of limits) {
      const s = await l.consume(l.keyOf(c, trust), o.cache)
      if (!s.allowed) {
        return errorResponse(429, 'RATE_LIMITED', `Too many requests (limit "${l.name}": ${l.points} per ${l.durationMs / 1000}s); retry after ${Math.ceil(s.resetMs / 1000)}s`, requestIdOf(c), undefined, {
          'retry-after': String(Math.max(1, Math.ceil(s.resetMs / 1000))),
          ...headers(s),
        })
      }
      if (!tightest || s.remaining < tightest.remaining) tightest = s
    }
    await next()
    if (!tightest) return undefined
    // Limits may run in two places (by address first, by caller after authentication): the answer shows the tighter.
    const prior = Number(c.res.headers.get('ratelimit-remaining') ?? Number.POSITIVE_INFINITY)
    if (!(prior < tightest.remaining)) for (const [k, v] of Object.entries(headers(tightest))) c.res.headers.set(k, v)
    return undefined
  }
}
