import { Database, stderrLogger, type CacheLike, type Logger, type Queryable } from '@onepipe/core'
import type { Context } from 'hono'
import { clientIp, trustProxies, type TrustProxy } from '../ratelimit/client-ip.js'
import { resolveKeys, type SigningKeys } from './keys.js'
import { RoleMap } from './roles.js'
import * as sql from './sql.js'
import { AUTH_NOTIFY, changePayload, StatusCache, type Change } from './status.js'
import { LoginThrottle } from './throttle.js'
import type { AuthConfig } from './types.js'
import { AccessTokens } from './tokens.js'

/**
 * @internal What the parts of an Auth share (the Auth itself, its sessions
 * in sessions.ts, its request authentication in authenticate.ts): the
 * configuration and keys, the database, cache and logger (which `attach()`
 * and `routes()` may set after the build), the session and key status
 * cache, and the writes left running in the background.
 */
export class AuthState {
  readonly c: AuthConfig
  readonly name: string
  readonly roleMap: RoleMap
  readonly keys: SigningKeys
  readonly tokens: AccessTokens
  db: Database | undefined
  /** The database is the environment's, opened by this Auth, so closing the Auth closes it. */
  ownDb = false
  cache: CacheLike | undefined
  log: Logger = stderrLogger
  /** Started by {@link AuthState.statusCache}; stopped and dropped by `detach()`. */
  status: StatusCache | undefined
  #throttle: LoginThrottle | undefined
  #trust: TrustProxy | undefined
  readonly #background = new Set<Promise<unknown>>()

  constructor(c: AuthConfig) {
    this.c = c
    this.name = c.name
    this.db = c.db
    this.cache = c.cache
    this.roleMap = new RoleMap(c.roles)
    this.keys = resolveKeys({ secret: c.secret, privateKey: c.privateKey }, c.name, stderrLogger)
    this.tokens = new AccessTokens(this.keys, { issuer: c.issuer, audience: c.audience, ttlSec: Math.round(c.accessTtlMs / 1000) })
  }

  database(): Database {
    if (!this.db) {
      // Outside serve() and without .db(), the environment's database, as REST does.
      this.db = Database.fromEnv()
      this.ownDb = true
    }
    return this.db
  }

  statusCache(): StatusCache {
    this.status ??= new StatusCache(this.database(), this.roleMap, this.log)
    return this.status
  }

  throttler(): LoginThrottle {
    this.#throttle ??= new LoginThrottle(this.cache, this.name)
    return this.#throttle
  }

  async announce(tx: Queryable, change: Change): Promise<void> {
    await sql.notifyIn(tx, this.database().channel(AUTH_NOTIFY), changePayload(change))
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.#background.add(p)
    void p.finally(() => this.#background.delete(p)).catch(() => undefined)
    return p
  }

  /** Settles once the writes in flight (`last_used_at`, the sweep) have. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#background])
  }

  /** The proxies serve() was told to trust; ignored when the app reads addresses itself with `.clientAddress()`. */
  useTrustedProxies(list: readonly string[]): void {
    if (this.c.clientAddress) return
    // Compiled now, so a bad entry fails serve() at start rather than the first login.
    this.#trust = trustProxies(list)
  }

  address(c: Context): string {
    if (this.c.clientAddress) return this.c.clientAddress(c) ?? 'unknown'
    // Read once: ONEPIPE_TRUSTED_PROXIES is configuration, and a bad entry should fail the first login loudly, not each.
    this.#trust ??= trustProxies()
    return clientIp(c, this.#trust) ?? 'unknown'
  }

  secureCookies(c: Context): boolean {
    if (this.c.secureCookies !== undefined) return this.c.secureCookies
    return process.env.NODE_ENV === 'production' || new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https'
  }
}
