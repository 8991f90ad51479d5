import { fetchView, type RequestView } from '../http/view.js'
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto'
import {
  assertDatabase,
  ConfigError,
  Database,
  parseDuration,
  registerPrimitive,
  stderrLogger,
  ValidationError,
  type CacheLike,
  type Component,
  type Duration,
  type Logger,
  type Queryable,
  type RuntimeContext,
} from '@onepipe/core'
import type { Context, Hono } from 'hono'
import { bearerProvider, fixedApiKeyProvider, type Authenticator, type AuthProvider, type AuthUser } from '../rest/auth.js'
import { clientIp, trustProxies, type TrustProxy } from '../ratelimit/client-ip.js'
import { ApiKeys, Applications, Users, type AccountsDeps } from './accounts.js'
import { apiKeyMatches, apiKeyPrefix } from './apikeys.js'
import { COOKIE, csrfMatches, csrfToken, readCookie } from './cookies.js'
import { AuthError } from './errors.js'
import { resolveKeys, type SigningAlgorithm, type SigningKeys } from './keys.js'
import { hashPassword, needsRehash, verifyDummy, verifyPassword } from './passwords.js'
import { RoleMap } from './roles.js'
import { mountAuthRoutes } from './routes.js'
import * as sql from './sql.js'
import { AUTH_NOTIFY, changePayload, StatusCache, type Change } from './status.js'
import { LoginThrottle } from './throttle.js'
import { AccessTokens } from './tokens.js'

/**
 * A caller as an `Auth` answers it: an {@link AuthUser} with every field
 * that applies filled in.
 *
 * @example
 * ```ts
 * { id: '0b9…', kind: 'user', email: 'ada@example.com', roles: ['operator'], permissions: ['onepipe:read', 'onepipe:write'], sessionId: '5c1…' }
 * ```
 */
export interface AuthCaller extends AuthUser {
  kind: 'user' | 'application'
  roles: string[]
  permissions: string[]
}

/**
 * What a login or a refresh hands out. `refreshToken` is a secret to keep
 * (a browser gets it as an HttpOnly cookie instead); `expiresIn` and
 * `refreshExpiresIn` are seconds, as in an OAuth 2.0 token response (RFC 6749 §5.1).
 */
export interface IssuedSession {
  user: AuthCaller
  accessToken: string
  refreshToken: string
  tokenType: 'Bearer'
  expiresIn: number
  refreshExpiresIn: number
  sessionId: string
}

/** Everything a built Auth runs with. */
interface AuthConfig {
  name: string
  db: Database | undefined
  cache: CacheLike | undefined
  secret: string | Uint8Array | undefined
  privateKey: string | undefined
  issuer: string
  audience: string
  accessTtlMs: number
  refreshTtlMs: number
  reuseMs: number
  roles: Record<string, string[]>
  allowedOrigins: string[]
  secureCookies: boolean | undefined
  clientAddress: ((c: Context) => string | undefined) | undefined
}

const REFRESH_FORMAT = /^[A-Za-z0-9_-]{43}$/
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')
const SWEEP_MS = 3_600_000
const TOUCH_MS = 60_000

/** How a refresh ended inside its transaction: answered, or refused with what was committed (a revocation) kept. */
type RefreshOutcome =
  | { kind: 'issued'; session: sql.SessionRow; prev: string; usedSec: number }
  | { kind: 'refused'; code: 'TOKEN_INVALID' | 'TOKEN_EXPIRED' | 'TOKEN_REVOKED' | 'ACCOUNT_DISABLED'; message: string; reused?: sql.SessionRow }

/**
 * Accounts and sessions for people, API keys for applications, and roles
 * for both (docs/auth.md). People log in with an email and a password and
 * get a short-lived JWT access token and a refresh token that rotates on
 * every use (OAuth 2.0 Security BCP / RFC 6819 §5.2.2.3 refresh token
 * rotation, with reuse detection); browsers get them as HttpOnly cookies
 * with CSRF protection. Applications send `X-API-Key`.
 *
 * It is a Component: `serve({ auth })` mounts its routes
 * (`/__onepipe/auth/*`, `/.well-known/jwks.json`) and attaches it; and an
 * {@link Authenticator}: `REST.create(…).auth(auth)` guards routes with it.
 *
 * @example
 * ```ts
 * const auth = Auth.create('main').db(db).secret(process.env.ONEPIPE_AUTH_SECRET!).roles({ billing: ['invoices:read'] }).build()
 * const api = REST.create('invoices').auth(auth)
 *   .get('/api/invoices', { permission: 'invoices:read' }, (ctx) => listInvoices(ctx.user!.id))
 *   .build()
 * await serve({ db, auth, rest: [api] })
 * ```
 */
export class Auth implements Component, Authenticator {
  readonly kind = 'auth'
  readonly name: string
  /** The JWS algorithm of access tokens: HS256 (secret), ES256 or EdDSA (private key). */
  readonly algorithm: SigningAlgorithm
  /** People's accounts. */
  readonly users: Users
  /** Applications that call with API keys. */
  readonly applications: Applications
  /** API keys of applications. */
  readonly apiKeys: ApiKeys
  /** Routes that must stay reachable without credentials (they check their own): for `serve()`'s guard of `/__onepipe/*`. */
  readonly publicRoutes: readonly string[]
  /** The roles this Auth knows and what they grant. */
  readonly roleMap: RoleMap
  readonly #c: AuthConfig
  readonly #keys: SigningKeys
  readonly #tokens: AccessTokens
  #db: Database | undefined
  #ownDb = false
  #cache: CacheLike | undefined
  #throttle: LoginThrottle | undefined
  #status: StatusCache | undefined
  #log: Logger = stderrLogger
  #trust: TrustProxy | undefined
  #ready: Promise<void> | undefined
  #sweep: NodeJS.Timeout | undefined
  readonly #memo = new WeakMap<object, Promise<AuthCaller | null>>()
  readonly #touched = new Map<string, number>()
  readonly #background = new Set<Promise<unknown>>()

  /** @internal Use {@link Auth.create}. */
  constructor(c: AuthConfig) {
    this.#c = c
    this.name = c.name
    this.#db = c.db
    this.#cache = c.cache
    this.roleMap = new RoleMap(c.roles)
    this.#keys = resolveKeys({ secret: c.secret, privateKey: c.privateKey }, c.name, stderrLogger)
    this.algorithm = this.#keys.alg
    this.#tokens = new AccessTokens(this.#keys, { issuer: c.issuer, audience: c.audience, ttlSec: Math.round(c.accessTtlMs / 1000) })
    const deps: AccountsDeps = {
      db: () => this.#database(),
      roles: this.roleMap,
      announce: (tx, change) => this.#announce(tx, change),
      applied: (changes) => {
        for (const ch of changes) this.#statusCache().apply(ch)
      },
    }
    this.users = new Users(deps)
    this.applications = new Applications(deps)
    this.apiKeys = new ApiKeys(deps)
    this.publicRoutes = ['POST /__onepipe/auth/login', 'POST /__onepipe/auth/refresh', 'POST /__onepipe/auth/logout', ...(this.#keys.publicJwk ? ['GET /.well-known/jwks.json'] : [])]
  }

  /**
   * Starts an Auth builder.
   *
   * @example
   * ```ts
   * const auth = Auth.create('main').db(db).build() // signing key from ONEPIPE_AUTH_SECRET or ONEPIPE_AUTH_PRIVATE_KEY
   * ```
   */
  static create(name: string): AuthBuilder {
    return new AuthBuilder(name)
  }

  /**
   * A provider for `Authorization: Bearer <token>` checked by `verify`: for
   * tokens OnePipe does not issue (a static ops token, another IdP's).
   *
   * @example
   * ```ts
   * REST.create('ops').auth(Auth.bearer(async (t) => (t === process.env.OPS_TOKEN ? { id: 'ops', roles: ['operator'] } : null)))
   * ```
   */
  static bearer(verify: (token: string) => Promise<AuthUser | null> | AuthUser | null): AuthProvider {
    return bearerProvider(verify)
  }

  /**
   * A provider for one fixed `X-API-Key` (compared in constant time) mapped
   * to one user. For keys per application, with rotation and hashing, use
   * `auth.apiKeys`.
   *
   * @example
   * ```ts
   * REST.create('hooks').auth(Auth.apiKey(process.env.HOOK_KEY!, { id: 'hooks', roles: ['operator'] }))
   * ```
   */
  static apiKey(key: string, user: AuthUser): AuthProvider {
    return fixedApiKeyProvider(key, user)
  }

  /** This Auth as a plain {@link AuthProvider} function. */
  get provider(): AuthProvider {
    return (req) => this.authenticate(req)
  }

  #database(): Database {
    if (!this.#db) {
      // Outside serve() and without .db(), the environment's database, as REST does.
      this.#db = Database.fromEnv()
      this.#ownDb = true
    }
    return this.#db
  }

  #statusCache(): StatusCache {
    this.#status ??= new StatusCache(this.#database(), this.roleMap, this.#log)
    return this.#status
  }

  #throttler(): LoginThrottle {
    this.#throttle ??= new LoginThrottle(this.#cache, this.name)
    return this.#throttle
  }

  async #announce(tx: Queryable, change: Change): Promise<void> {
    await sql.notifyIn(tx, this.#database().channel(AUTH_NOTIFY), changePayload(change))
  }

  /**
   * Migrates, starts listening for revocations, and creates the first admin
   * from `ONEPIPE_ADMIN_EMAIL` + `ONEPIPE_ADMIN_PASSWORD` if no account has
   * that email (never overwriting one). `attach()` calls it; call it
   * yourself outside `serve()`.
   *
   * @throws ConfigError `AUTH_ADMIN_INCOMPLETE` when only one of the two variables is set,
   *   `AUTH_ADMIN_INVALID` when they do not make a valid account
   *
   * @example
   * ```ts
   * await auth.ready()
   * ```
   */
  ready(): Promise<void> {
    // The environment as it is now, when the app starts, not after the awaits below.
    const env = { ONEPIPE_ADMIN_EMAIL: process.env.ONEPIPE_ADMIN_EMAIL, ONEPIPE_ADMIN_PASSWORD: process.env.ONEPIPE_ADMIN_PASSWORD, NODE_ENV: process.env.NODE_ENV }
    this.#ready ??= (async () => {
      await this.#database().ready()
      await this.#statusCache().start()
      await this.#firstAdmin(env)
    })().catch((e: unknown) => {
      this.#ready = undefined
      throw e
    })
    return this.#ready
  }

  async #firstAdmin(env: Record<string, string | undefined>): Promise<void> {
    const email = env.ONEPIPE_ADMIN_EMAIL
    const password = env.ONEPIPE_ADMIN_PASSWORD
    if (!email && !password) {
      if (env.NODE_ENV === 'production' && (await sql.countUsers(this.#database())) === 0) {
        this.#log.warn({ auth: this.name }, 'auth: there is no account yet; set ONEPIPE_ADMIN_EMAIL and ONEPIPE_ADMIN_PASSWORD to create the first admin')
      }
      return
    }
    if (!email || !password) throw new ConfigError('AUTH_ADMIN_INCOMPLETE', `${email ? 'ONEPIPE_ADMIN_PASSWORD' : 'ONEPIPE_ADMIN_EMAIL'} is not set; the first admin needs both ONEPIPE_ADMIN_EMAIL and ONEPIPE_ADMIN_PASSWORD`)
    try {
      await this.users.create({ email, password, roles: ['admin'] })
      this.#log.info({ auth: this.name }, 'auth: created the first admin from ONEPIPE_ADMIN_EMAIL')
    } catch (e) {
      if ((e as { code?: unknown }).code === 'EMAIL_TAKEN') return
      if (e instanceof ValidationError) {
        throw new ConfigError('AUTH_ADMIN_INVALID', `ONEPIPE_ADMIN_EMAIL or ONEPIPE_ADMIN_PASSWORD is not valid: ${e.issues.map((i) => `${i.path} ${i.message}`).join('; ')}`)
      }
      throw e
    }
  }

  // ─── Component hooks ───────────────────────────────────────────────

  /** Uses the app's database and cache unless given, then {@link Auth.ready}; sweeps old sessions hourly (called by `serve()`). */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#log = rt.logger.child({ auth: this.name })
    this.#db ??= rt.db
    this.#cache ??= rt.cache
    await this.ready()
    clearInterval(this.#sweep)
    const db = this.#database()
    this.#sweep = setInterval(() => {
      this.#track(sql.sweepSessions(db)).catch((err: unknown) => this.#log.error({ err }, 'auth: sweeping old sessions failed'))
    }, SWEEP_MS)
    this.#sweep.unref()
  }

  /** Stops listening and the sweep, waits for `last_used_at` writes in flight (called by `serve()`). */
  async detach(): Promise<void> {
    clearInterval(this.#sweep)
    this.#sweep = undefined
    await Promise.allSettled([...this.#background])
    await this.#status?.stop()
    this.#status = undefined
    this.#ready = undefined
  }

  /** Mounts `/__onepipe/auth/*` and, with a private key, `/.well-known/jwks.json` (called by `serve()`). */
  routes(app: unknown, rt?: RuntimeContext): void {
    if (rt) {
      this.#db ??= rt.db
      this.#cache ??= rt.cache
      this.#log = rt.logger.child({ auth: this.name })
    }
    mountAuthRoutes(app as Hono, this, {
      logger: () => this.#log,
      address: (c) => this.#address(c),
      secureCookies: (c) => this.#secureCookies(c),
      sessionOfRefresh: (token) => this.#sessionOfRefresh(token),
      checkOrigin: (req) => this.#checkOrigin(fetchView(req)),
      csrfToken: (sid) => csrfToken(this.#keys.csrf, sid),
      csrfValid: (sid, got) => csrfMatches(this.#keys.csrf, sid, got),
      refreshTtlSec: Math.round(this.#c.refreshTtlMs / 1000),
    })
  }

  /**
   * Releases what this Auth holds: its listener and, when it opened the
   * environment's database itself, that database.
   *
   * @example
   * ```ts
   * await auth.close()
   * ```
   */
  async close(): Promise<void> {
    await this.detach()
    if (this.#ownDb) await this.#db?.close()
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#background.add(p)
    void p.finally(() => this.#background.delete(p)).catch(() => undefined)
    return p
  }

  #address(c: Context): string {
    if (this.#c.clientAddress) return this.#c.clientAddress(c) ?? 'unknown'
    // Read once: ONEPIPE_TRUSTED_PROXIES is configuration, and a bad entry should fail the first login loudly, not each.
    this.#trust ??= trustProxies()
    return clientIp(c, this.#trust) ?? 'unknown'
  }

  #secureCookies(c: Context): boolean {
    if (this.#c.secureCookies !== undefined) return this.#c.secureCookies
    return process.env.NODE_ENV === 'production' || new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https'
  }

  // ─── Authentication ────────────────────────────────────────────────

  /**
   * Who sent `req`: a `Bearer` access token, else an `X-API-Key`, else the
   * `onepipe_access` cookie (on POST, PUT, PATCH and DELETE only with the
   * `X-CSRF-Token` of its session and an `Origin`, when sent, of this host
   * or an allowed origin). `null` when the request carries no credentials;
   * credentials that are there but wrong throw. Asked twice about one
   * request (serve()'s guard, then a route), it answers from the first time.
   *
   * @throws AuthError `TOKEN_INVALID`, `TOKEN_EXPIRED`, `TOKEN_REVOKED`, `ACCOUNT_DISABLED`, `API_KEY_INVALID` (401), `CSRF_FAILED` (403)
   *
   * @example
   * ```ts
   * const user = await auth.authenticate(new Request('http://x/api', { headers: { authorization: `Bearer ${accessToken}` } }))
   * ```
   */
  authenticate(req: Request): Promise<AuthCaller | null> {
    return this.authenticateView(fetchView(req))
  }

  /**
   * {@link Auth.authenticate} for a {@link RequestView}: what `serve()` and
   * REST use, reading only the headers it needs.
   *
   * @example
   * ```ts
   * const user = await auth.authenticateView(requestView(c))
   * ```
   */
  authenticateView(v: RequestView): Promise<AuthCaller | null> {
    let p = this.#memo.get(v.key)
    if (!p) {
      p = this.#authenticate(v)
      this.#memo.set(v.key, p)
    }
    return p
  }

  /**
   * The caller of a request when it can be told without waiting: no
   * credentials at all (null), or a Bearer token verified before whose
   * session is in memory and fresh. `undefined` means "ask
   * {@link Auth.authenticateView}" (a new token, an API key, a cookie, a
   * state to read). Lets a route behind a JWT answer synchronously, as an open
   * one does. Never throws: anything doubtful is left to the full check.
   *
   * @example
   * ```ts
   * const fast = auth.authenticateNow(requestView(c))
   * const user = fast !== undefined ? fast : await auth.authenticateView(requestView(c))
   * ```
   */
  authenticateNow(v: RequestView): AuthCaller | null | undefined {
    const authz = v.header('authorization')
    if (authz === undefined) return v.header('x-api-key') === undefined && v.header('cookie') === undefined ? null : undefined
    if (authz.length < 8 || authz.slice(0, 7).toLowerCase() !== 'bearer ') return undefined
    const claims = this.#tokens.peek(authz.slice(7).trim())
    if (!claims) return undefined
    const st = this.#status?.peekSession(claims.sid)
    if (!st || st.revoked || st.disabled || st.userId !== claims.sub) return undefined
    return { id: claims.sub, kind: 'user', email: st.email, roles: st.roles, permissions: st.permissions, sessionId: claims.sid }
  }

  async #authenticate(req: RequestView): Promise<AuthCaller | null> {
    const h = { get: (n: string) => req.header(n) ?? null }
    const authz = h.get('authorization')
    if (authz !== null) {
      const m = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(authz)
      if (!m?.[1]) throw new AuthError('TOKEN_INVALID', 'The Authorization header must be "Bearer <access token>"')
      return this.verifyAccessToken(m[1])
    }
    const key = h.get('x-api-key')
    if (key !== null) return this.#fromApiKey(key)
    const cookie = readCookie(h.get('cookie'), COOKIE.access)
    if (cookie === undefined) return null
    const user = await this.verifyAccessToken(cookie)
    if (UNSAFE.has(req.method)) {
      this.#checkOrigin(req)
      if (!csrfMatches(this.#keys.csrf, user.sessionId ?? '', h.get('x-csrf-token'))) {
        throw new AuthError('CSRF_FAILED', 'A request authenticated by cookie that changes state needs the X-CSRF-Token header (the onepipe_csrf cookie)')
      }
    }
    return user
  }

  /** Refuses a browser request from another site: `Origin` (when sent) must be this host or an allowed origin. */
  #checkOrigin(req: RequestView): void {
    const origin = req.header('origin')
    if (origin === undefined) {
      if (req.header('sec-fetch-site') === 'cross-site') throw new AuthError('CSRF_FAILED', 'Cross-site requests may not use the session cookie')
      return
    }
    if (this.#c.allowedOrigins.includes(origin)) return
    let host: string | undefined
    try {
      host = new URL(origin).host
    } catch {
      host = undefined
    }
    // Hosts, not schemes: behind a TLS-terminating proxy the app sees http:// while the browser says https://.
    if (host === undefined || host !== new URL(req.url()).host) throw new AuthError('CSRF_FAILED', 'The request comes from an origin this app does not allow (Origin header); add it to ALLOWED_ORIGINS or .allowedOrigins()')
  }

  /**
   * The caller an access token stands for, checked against the live state
   * of its session and user (revoked, disabled, current roles): from memory
   * in the common case, from the database after a change anywhere.
   *
   * @throws AuthError `TOKEN_INVALID`, `TOKEN_EXPIRED`, `TOKEN_REVOKED`, `ACCOUNT_DISABLED`
   *
   * @example
   * ```ts
   * const user = await auth.verifyAccessToken(token) // { id, kind: 'user', email, roles, permissions, sessionId }
   * ```
   */
  async verifyAccessToken(token: string): Promise<AuthCaller> {
    const claims = await this.#tokens.verify(token)
    const st = await this.#statusCache().session(claims.sid)
    if (st?.disabled && st.userId === claims.sub) throw new AuthError('ACCOUNT_DISABLED', 'The account is disabled')
    if (!st || st.userId !== claims.sub || st.revoked) throw new AuthError('TOKEN_REVOKED', 'The session has ended; log in again')
    return { id: claims.sub, kind: 'user', email: st.email, roles: st.roles, permissions: st.permissions, sessionId: claims.sid }
  }

  async #fromApiKey(key: string): Promise<AuthCaller> {
    const prefix = apiKeyPrefix(key)
    const k = prefix === undefined ? undefined : await this.#statusCache().apiKey(prefix)
    if (!k || !apiKeyMatches(key, k.hash)) throw new AuthError('API_KEY_INVALID', 'The API key is not valid')
    if (!k.usable || (k.expiresAtMs !== null && k.expiresAtMs <= Date.now())) throw new AuthError('API_KEY_INVALID', 'The API key is disabled or expired')
    this.#touchKey(k.id)
    return { id: k.applicationId, kind: 'application', applicationId: k.applicationId, apiKeyId: k.id, roles: k.roles, permissions: k.permissions }
  }

  /** Records a key's use at most once a minute per key and instance, off the request's path. */
  #touchKey(id: string): void {
    const now = Date.now()
    if (now - (this.#touched.get(id) ?? 0) < TOUCH_MS) return
    if (this.#touched.size > 10_000) this.#touched.clear()
    this.#touched.set(id, now)
    this.#track(sql.touchApiKey(this.#database(), id)).catch((err: unknown) => this.#log.warn({ err, apiKeyId: id }, 'auth: recording an API key use failed'))
  }

  // ─── Sessions ──────────────────────────────────────────────────────

  /**
   * Logs a person in: an unknown email and a wrong password are the same
   * `INVALID_CREDENTIALS` after the same argon2id work (a dummy hash is
   * verified for an unknown email). Each attempt spends a point of the
   * account's and the address's budget (10 a minute) first.
   *
   * @throws AuthError `INVALID_CREDENTIALS`, `ACCOUNT_DISABLED` (right password, disabled account), `TOO_MANY_ATTEMPTS` (429);
   *   ValidationError when email or password is not a string
   *
   * @example
   * ```ts
   * const s = await auth.login('ada@example.com', 'correct horse battery', { address: '203.0.113.7' })
   * fetch('/api/orders', { headers: { authorization: `Bearer ${s.accessToken}` } })
   * ```
   */
  async login(email: string, password: string, o: { address?: string } = {}): Promise<IssuedSession> {
    if (typeof email !== 'string' || email.length === 0 || email.length > 254) throw new ValidationError('login', [{ path: 'email', message: 'must be an email address' }])
    if (typeof password !== 'string' || password.length === 0 || password.length > 1024) throw new ValidationError('login', [{ path: 'password', message: 'must be a string of 1-1024 characters' }])
    await this.ready()
    const address = o.address ?? 'unknown'
    await this.#throttler().attempt(email, address)
    const db = this.#database()
    const row = await sql.credentialsByEmail(db, email)
    if (!row) {
      await verifyDummy(password)
      throw new AuthError('INVALID_CREDENTIALS', 'The email or the password is wrong')
    }
    if (!(await verifyPassword(row.password_hash, password))) throw new AuthError('INVALID_CREDENTIALS', 'The email or the password is wrong')
    await this.#throttler().succeeded(email, address)
    if (row.disabled_at !== null) throw new AuthError('ACCOUNT_DISABLED', 'The account is disabled')
    if (needsRehash(row.password_hash)) await sql.setPasswordHash(db, row.id, await hashPassword(password))
    const sid = randomUUID()
    const refreshToken = randomBytes(32).toString('base64url')
    await sql.startSession(db, { id: sid, userId: row.id, tokenHash: sha256(refreshToken), ttlMs: this.#c.refreshTtlMs })
    const { token } = await this.#tokens.sign({ sub: row.id, sid, roles: row.roles })
    return this.#issued(token, refreshToken, sid, { id: row.id, email: row.email, roles: row.roles })
  }

  #issued(accessToken: string, refreshToken: string, sid: string, u: { id: string; email: string; roles: string[] }): IssuedSession {
    return {
      user: { id: u.id, kind: 'user', email: u.email, roles: u.roles, permissions: this.roleMap.permissionsOf(u.roles), sessionId: sid },
      accessToken,
      refreshToken,
      tokenType: 'Bearer',
      expiresIn: this.#tokens.ttlSec,
      refreshExpiresIn: Math.round(this.#c.refreshTtlMs / 1000),
      sessionId: sid,
    }
  }

  /** The refresh token that follows `token`: derived, so a repeat within the reuse interval gets it again with nothing stored in plain. */
  #successorOf(token: string): string {
    return createHmac('sha256', this.#keys.successor).update(`next:${token}`).digest('base64url')
  }

  #jtiOf(token: string): string {
    return createHmac('sha256', this.#keys.successor).update(`jti:${token}`).digest('base64url').slice(0, 22)
  }

  /**
   * Exchanges a refresh token for a new pair in the same session, spending
   * it (rotation). The same token again within the reuse interval (two tabs,
   * a retried request) gets the same pair; after it, the reuse is taken as
   * theft and the whole session is revoked, its newest token included
   * (RFC 6819 §5.2.2.3, OAuth 2.0 Security BCP §4.14.2).
   *
   * @throws AuthError `TOKEN_INVALID` (unknown), `TOKEN_EXPIRED`, `TOKEN_REVOKED` (ended, or reused now), `ACCOUNT_DISABLED`
   *
   * @example
   * ```ts
   * const next = await auth.refresh(saved.refreshToken) // keep next.refreshToken; the old one is spent
   * ```
   */
  async refresh(refreshToken: string): Promise<IssuedSession> {
    if (typeof refreshToken !== 'string' || !REFRESH_FORMAT.test(refreshToken)) throw new AuthError('TOKEN_INVALID', 'The refresh token is malformed')
    await this.ready()
    const out = await this.#database().transaction((tx) => this.#rotate(tx, refreshToken))
    if (out.kind === 'refused') {
      if (out.reused) {
        this.#statusCache().apply({ kind: 's', id: out.reused.id })
        this.#log.warn({ auth: this.name, sessionId: out.reused.id, userId: out.reused.user_id }, 'auth: a spent refresh token was presented after the reuse interval; the session was revoked')
      }
      throw new AuthError(out.code, out.message)
    }
    const { session: s, prev, usedSec } = out
    const next = this.#successorOf(prev)
    const { token } = await this.#tokens.sign({ sub: s.user_id, sid: s.id, roles: s.roles, iat: usedSec, jti: this.#jtiOf(prev) })
    return this.#issued(token, next, s.id, { id: s.user_id, email: s.email, roles: s.roles })
  }

  async #rotate(tx: Queryable, presented: string): Promise<RefreshOutcome> {
    const hash = sha256(presented)
    const s = await sql.lockSessionOfToken(tx, hash)
    const t = s ? await sql.readToken(tx, hash, this.#c.reuseMs) : undefined
    if (!s || !t) return { kind: 'refused', code: 'TOKEN_INVALID', message: 'The refresh token is not known; log in again' }
    if (s.disabled) return { kind: 'refused', code: 'ACCOUNT_DISABLED', message: 'The account is disabled' }
    if (s.revoked) return { kind: 'refused', code: 'TOKEN_REVOKED', message: 'The session has ended; log in again' }
    if (!t.used) {
      if (t.expired) return { kind: 'refused', code: 'TOKEN_EXPIRED', message: 'The refresh token has expired; log in again' }
      const usedSec = await sql.rotateToken(tx, { tokenHash: hash, successorHash: sha256(this.#successorOf(presented)), ttlMs: this.#c.refreshTtlMs })
      if (usedSec === undefined) return { kind: 'refused', code: 'TOKEN_INVALID', message: 'The refresh token could not be rotated; log in again' }
      return { kind: 'issued', session: s, prev: presented, usedSec }
    }
    if (t.within_reuse && t.used_sec !== null) return this.#latest(tx, s, presented, t.used_sec)
    await sql.revokeSession(tx, s.id, 'reuse')
    await this.#announce(tx, { kind: 's', id: s.id })
    return { kind: 'refused', code: 'TOKEN_REVOKED', message: 'This refresh token was used already; the session was ended to protect the account. Log in again', reused: s }
  }

  /**
   * The pair a spent token was exchanged for, followed down the chain to
   * the newest one, so a second tab that repeats an old token ends up with
   * the token the first tab already moved on to, not a spent one.
   */
  async #latest(tx: Queryable, s: sql.SessionRow, spent: string, usedSec: number): Promise<RefreshOutcome> {
    let prev = spent
    let sec = usedSec
    for (let hop = 0; hop < 16; hop++) {
      const next = this.#successorOf(prev)
      const t = await sql.readToken(tx, sha256(next), this.#c.reuseMs)
      if (!t || t.session_id !== s.id) return { kind: 'refused', code: 'TOKEN_INVALID', message: 'The refresh token is not known; log in again' }
      if (!t.used || t.used_sec === null) return { kind: 'issued', session: s, prev, usedSec: sec }
      prev = next
      sec = t.used_sec
    }
    return { kind: 'refused', code: 'TOKEN_INVALID', message: 'The refresh token is too old; log in again' }
  }

  async #sessionOfRefresh(refreshToken: string): Promise<string | undefined> {
    if (!REFRESH_FORMAT.test(refreshToken)) return undefined
    return sql.sessionOfToken(this.#database(), sha256(refreshToken))
  }

  /**
   * Ends a session (logout): its refresh tokens and its access tokens stop
   * working at once, on every instance. `{ refreshToken }` finds the session
   * from a refresh token; `{ all: true }` with a user id ends every session
   * of that user. Ending an ended session is not an error.
   *
   * @throws AuthError `TOKEN_INVALID` for a refresh token that is not known
   *
   * @example
   * ```ts
   * await auth.logout({ sessionId: ctx.user!.sessionId! })
   * await auth.logout({ refreshToken })
   * await auth.logout({ userId, all: true })
   * ```
   */
  async logout(o: { sessionId: string } | { refreshToken: string } | { userId: string; all: true }): Promise<void> {
    await this.ready()
    const db = this.#database()
    let change: Change
    if ('userId' in o) change = { kind: 'u', id: o.userId }
    else {
      const sid = 'sessionId' in o ? o.sessionId : await this.#sessionOfRefresh(o.refreshToken)
      if (!sid) throw new AuthError('TOKEN_INVALID', 'The refresh token is not known')
      change = { kind: 's', id: sid }
    }
    await db.transaction(async (tx) => {
      const changed = change.kind === 'u' ? (await sql.revokeUserSessions(tx, change.id, 'logout')).length > 0 : await sql.revokeSession(tx, change.kind === 's' ? change.id : '', 'logout')
      if (changed) await this.#announce(tx, change)
    })
    this.#statusCache().apply(change)
  }

  /**
   * The public keys access tokens are signed with, as a JWK Set (RFC 7517
   * §5), for other services to verify them; empty with a shared secret.
   *
   * @example
   * ```ts
   * const jwks = auth.jwks() // { keys: [{ kty: 'OKP', crv: 'Ed25519', x: '…', kid: '…', alg: 'EdDSA', use: 'sig' }] }
   * ```
   */
  jwks(): { keys: Record<string, unknown>[] } {
    return { keys: this.#keys.publicJwk ? [{ ...this.#keys.publicJwk }] : [] }
  }

}

/**
 * Fluent configuration for an {@link Auth}.
 *
 * @example
 * ```ts
 * Auth.create('main').db(db).privateKey(process.env.ONEPIPE_AUTH_PRIVATE_KEY!).issuer('https://shop.example.com').accessTtl('10m').build()
 * ```
 */
export class AuthBuilder {
  #c: AuthConfig

  constructor(name: string) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) throw new ConfigError('AUTH_BAD_NAME', `Auth name "${name}" is invalid: use letters, digits, "_", "-" or "." (up to 64)`)
    this.#c = {
      name,
      db: undefined,
      cache: undefined,
      secret: undefined,
      privateKey: undefined,
      issuer: 'onepipe',
      audience: 'onepipe',
      accessTtlMs: 15 * 60_000,
      refreshTtlMs: 7 * 86_400_000,
      reuseMs: 10_000,
      roles: {},
      allowedOrigins: (process.env.ALLOWED_ORIGINS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
      secureCookies: undefined,
      clientAddress: undefined,
    }
  }

  /** Where accounts, sessions, applications and keys live (default: the app's database under serve()). */
  db(db: Database): this {
    this.#c.db = assertDatabase(db, `Auth "${this.#c.name}"`)
    return this
  }
  /** Where login failures are counted: Redis shares the count between instances (default: the app's cache under serve(), else memory). */
  cache(cache: CacheLike): this {
    this.#c.cache = cache
    return this
  }
  /** Sign access tokens with HS256 and this secret (at least 32 bytes). Default: `ONEPIPE_AUTH_SECRET`. */
  secret(secret: string | Uint8Array): this {
    this.#c.secret = secret
    return this
  }
  /** Sign access tokens with this PKCS#8 PEM key (P-256 → ES256, Ed25519 → EdDSA) and publish its public half at `/.well-known/jwks.json`. Default: `ONEPIPE_AUTH_PRIVATE_KEY`. */
  privateKey(pem: string): this {
    this.#c.privateKey = pem
    return this
  }
  /** The `iss` of every token, checked on every request (default `onepipe`). */
  issuer(iss: string): this {
    this.#c.issuer = checkClaim(iss, 'issuer')
    return this
  }
  /** The `aud` of every token, checked on every request (default `onepipe`). */
  audience(aud: string): this {
    this.#c.audience = checkClaim(aud, 'audience')
    return this
  }
  /** Access token lifetime (default `15m`, from 10 s to 1 h). */
  accessTtl(d: Duration): this {
    this.#c.accessTtlMs = within(d, 'accessTtl', 10_000, 3_600_000)
    return this
  }
  /** Refresh token lifetime, renewed by each refresh (default `7d`, from 1 min to 90 d). */
  refreshTtl(d: Duration): this {
    this.#c.refreshTtlMs = within(d, 'refreshTtl', 60_000, 90 * 86_400_000)
    return this
  }
  /** How long a spent refresh token still answers with its successor (default `10s`, at most 60 s; 0 turns it off). */
  reuseInterval(d: Duration): this {
    this.#c.reuseMs = within(d, 'reuseInterval', 0, 60_000)
    return this
  }
  /** Roles of the app and the permissions each grants, added to `admin`, `operator` and `viewer`. */
  roles(map: Record<string, string[]>): this {
    this.#c.roles = { ...this.#c.roles, ...map }
    return this
  }
  /** Origins (`https://app.example.com`) that may send cookie-authenticated requests besides the app's own host (default `ALLOWED_ORIGINS`). */
  allowedOrigins(origins: string[]): this {
    this.#c.allowedOrigins = [...origins]
    return this
  }
  /** Force the `Secure` cookie attribute on or off (default: on under HTTPS or NODE_ENV=production). */
  secureCookies(on: boolean): this {
    this.#c.secureCookies = on
    return this
  }
  /** How to read a login's client address for throttling (default: the socket's, or X-Forwarded-For from ONEPIPE_TRUSTED_PROXIES). */
  clientAddress(fn: (c: Context) => string | undefined): this {
    this.#c.clientAddress = fn
    return this
  }

  /**
   * Builds the Auth and records it in the manifest (never its secret).
   *
   * @throws ConfigError `AUTH_SECRET_MISSING` under NODE_ENV=production without a key, `AUTH_SECRET_WEAK`, `AUTH_KEY_INVALID`,
   *   `AUTH_KEY_AMBIGUOUS`, `INVALID_ROLE`, `AUTH_INVALID_TTL` (refreshTtl not longer than accessTtl)
   */
  build(): Auth {
    const c = { ...this.#c, roles: { ...this.#c.roles }, allowedOrigins: [...this.#c.allowedOrigins] }
    if (c.refreshTtlMs <= c.accessTtlMs) throw new ConfigError('AUTH_INVALID_TTL', `Auth "${c.name}": refreshTtl must be longer than accessTtl`)
    const auth = new Auth(c)
    registerPrimitive({
      primitive: 'auth',
      name: c.name,
      infrastructure: ['postgresql', ...(c.cache && 'client' in c.cache ? (['redis'] as const) : [])],
      config: {
        algorithm: auth.algorithm,
        issuer: c.issuer,
        audience: c.audience,
        accessTtlMs: c.accessTtlMs,
        refreshTtlMs: c.refreshTtlMs,
        reuseIntervalMs: c.reuseMs,
        roles: auth.roleMap.names(),
        allowedOrigins: c.allowedOrigins,
      },
    })
    return auth
  }
}

function checkClaim(v: string, what: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 512) throw new ConfigError('AUTH_INVALID_CLAIM', `Auth ${what} must be a string of 1-512 characters`)
  return v
}

function within(d: Duration, what: string, min: number, max: number): number {
  const ms = parseDuration(d)
  if (ms < min || ms > max) throw new ConfigError('AUTH_INVALID_TTL', `Auth ${what} must be from ${min / 1000} s to ${max / 1000} s, got ${ms / 1000} s`)
  return ms
}
