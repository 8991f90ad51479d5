import { createHash } from 'node:crypto'
import { RedisCache, type CacheLike } from '@onepipe/core'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible'
import { AuthError } from './errors.js'

/** Failed logins allowed per window, per account and per address. */
export const LOGIN_ATTEMPTS = 10
/** The window, in seconds. */
export const LOGIN_WINDOW_SEC = 60

function limiter(cache: CacheLike | undefined, keyPrefix: string): RateLimiterAbstract {
  const o = { points: LOGIN_ATTEMPTS, duration: LOGIN_WINDOW_SEC, keyPrefix }
  if (cache instanceof RedisCache) {
    // Shared by every instance on the Redis; if Redis fails, each instance keeps counting on its own rather than letting every attempt through.
    return new RateLimiterRedis({ ...o, keyPrefix: `${cache.prefix}${keyPrefix}`, storeClient: cache.client, insuranceLimiter: new RateLimiterMemory(o) })
  }
  return new RateLimiterMemory(o)
}

const digest = (s: string) => createHash('sha256').update(s).digest('base64url').slice(0, 32)

/**
 * The throttle key of an email: at least as coarse as the database's
 * `lower(email) = lower($1)` that finds the account, so no two spellings that
 * log into one account count apart. JavaScript's `toLowerCase()` is finer than
 * PostgreSQL's `lower()`: `"İ"` becomes `"i\u0307"` in JavaScript but `"i"` in
 * PostgreSQL (C.UTF-8, libc and PGlite), so `admİn@…` reached the `admin@…`
 * account under a count of its own, and each `i` of an email doubled the
 * guesses per minute; a final `Σ` is `ς` in JavaScript and `σ` in PostgreSQL.
 * Lowering code point by code point after NFD, dropping combining marks and
 * folding `ς` to `σ` removes every such difference (checked against PostgreSQL's
 * `lower()` of every code point). Being coarser only makes look-alike emails
 * share a count, never lets one account have two.
 */
export function accountKey(email: string): string {
  let out = ''
  for (const ch of email.normalize('NFD')) out += ch.toLowerCase()
  return out.normalize('NFD').replace(/\p{M}/gu, '').replace(/\u03c2/g, '\u03c3')
}

/**
 * Login throttling (OWASP Authentication Cheat Sheet, "protect against
 * automated attacks"): each attempt takes a point from its account's and
 * its address's budget of 10 per minute before the password is checked, so
 * concurrent guesses cannot slip past the count; the 11th within the minute
 * is a 429 with `Retry-After`, right password or not. A success gives the
 * address its point back and clears the account's count. The account key
 * is the email folded as {@link accountKey} does, whether or not the account exists, so the
 * throttle does not reveal which emails have accounts; emails are hashed
 * before they become keys.
 *
 * @example
 * ```ts
 * await throttle.attempt(email, ip) // throws AuthError TOO_MANY_ATTEMPTS
 * if (ok) await throttle.succeeded(email, ip)
 * ```
 */
export class LoginThrottle {
  readonly #account: RateLimiterAbstract
  readonly #address: RateLimiterAbstract

  constructor(cache: CacheLike | undefined, name: string) {
    this.#account = limiter(cache, `onepipe:auth:${name}:acct`)
    this.#address = limiter(cache, `onepipe:auth:${name}:ip`)
  }

  /** @throws AuthError `TOO_MANY_ATTEMPTS` with `retryAfterSeconds` */
  async attempt(email: string, address: string): Promise<void> {
    const [a, b] = await Promise.allSettled([this.#account.consume(digest(accountKey(email))), this.#address.consume(digest(address))])
    const waits = [a, b].flatMap((r) => (r.status === 'rejected' && r.reason instanceof RateLimiterRes ? [r.reason.msBeforeNext] : []))
    for (const r of [a, b]) if (r.status === 'rejected' && !(r.reason instanceof RateLimiterRes)) throw r.reason
    if (waits.length > 0) {
      const sec = Math.max(1, Math.ceil(Math.max(...waits) / 1000))
      throw new AuthError('TOO_MANY_ATTEMPTS', `Too many failed logins; try again in ${sec} s`, { retryAfterSeconds: sec, details: { retryAfterSeconds: sec } })
    }
  }

  async succeeded(email: string, address: string): Promise<void> {
    await Promise.all([this.#account.delete(digest(accountKey(email))), this.#address.reward(digest(address))])
  }
}
