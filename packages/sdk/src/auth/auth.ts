import { fetchView, type RequestView } from '../http/view.js'
import { assertDatabase, ConfigError, parseDuration, registerPrimitive, type CacheLike, type Component, type Database, type Duration, type RuntimeContext } from '@onepipe/core'
import type { Context, Hono } from 'hono'
import { bearerProvider, fixedApiKeyProvider, type Authenticator, type AuthProvider, type AuthUser } from '../rest/auth.js'
import { ApiKeys, Applications, createFirstAdmin, Users, type AccountsDeps } from './accounts.js'
import { Authentication } from './authenticate.js'
import { csrfMatches, csrfToken } from './cookies.js'
import type { SigningAlgorithm } from './keys.js'
import type { RoleMap } from './roles.js'
import { mountAuthRoutes } from './routes.js'
import { Sessions } from './sessions.js'
import * as sql from './sql.js'
import { AuthState } from './state.js'
import type { AuthCaller, AuthConfig, IssuedSession } from './types.js'

// The Auth and its builder; the Auth's sessions (login, refresh, logout) are in
// sessions.ts, the authentication of requests in authenticate.ts, and what they
// share (configuration, keys, database, status cache) in state.ts.

const SWEEP_MS = 3_600_000

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
  /** What the Auth's parts share: configuration, keys, database, cache, logger, status cache. */
  readonly #s: AuthState
  readonly #sessions: Sessions
  readonly #authn: Authentication
  #ready: Promise<void> | undefined
  #sweep: NodeJS.Timeout | undefined

  /** @internal Use {@link Auth.create}. */
  constructor(c: AuthConfig) {
    const s = (this.#s = new AuthState(c))
    this.name = c.name
    this.roleMap = s.roleMap
    this.algorithm = s.keys.alg
    const deps: AccountsDeps = {
      db: () => s.database(),
      roles: this.roleMap,
      announce: (tx, change) => s.announce(tx, change),
      applied: (changes) => {
        for (const ch of changes) s.statusCache().apply(ch)
      },
    }
    this.users = new Users(deps)
    this.applications = new Applications(deps)
    this.apiKeys = new ApiKeys(deps)
    this.publicRoutes = ['POST /__onepipe/auth/login', 'POST /__onepipe/auth/refresh', 'POST /__onepipe/auth/logout', ...(s.keys.publicJwk ? ['GET /.well-known/jwks.json'] : [])]
    this.#sessions = new Sessions(s, () => this.ready())
    this.#authn = new Authentication(s)
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
      await this.#s.database().ready()
      await this.#s.statusCache().start()
      await createFirstAdmin(this.users, this.#s, env)
    })().catch((e: unknown) => {
      this.#ready = undefined
      throw e
    })
    return this.#ready
  }

  // ─── Component hooks ───────────────────────────────────────────────

  /** Uses the app's database and cache unless given, then {@link Auth.ready}; sweeps old sessions hourly (called by `serve()`). */
  async attach(rt: RuntimeContext): Promise<void> {
    const s = this.#s
    s.log = rt.logger.child({ auth: this.name })
    s.db ??= rt.db
    s.cache ??= rt.cache
    await this.ready()
    clearInterval(this.#sweep)
    const db = s.database()
    this.#sweep = setInterval(() => {
      s.track(sql.sweepSessions(db)).catch((err: unknown) => s.log.error({ err }, 'auth: sweeping old sessions failed'))
    }, SWEEP_MS)
    this.#sweep.unref()
  }

  /**
   * @internal Reads login addresses behind these proxies (`serve({ trustProxy })`),
   * as serve()'s rate limits do, instead of `ONEPIPE_TRUSTED_PROXIES`: otherwise
   * every client behind the proxy shares its address and one attacker's failed
   * logins lock everyone out. An app that gave `.clientAddress()` keeps it.
   *
   * @throws ConfigError `INVALID_TRUSTED_PROXY` for an entry that is not an address or range
   *
   * @example
   * ```ts
   * auth.useTrustedProxies(['10.0.0.0/8']) // serve() does this with options.trustProxy
   * ```
   */
  useTrustedProxies(list: readonly string[]): void {
    this.#s.useTrustedProxies(list)
  }

  /** Stops listening and the sweep, waits for `last_used_at` writes in flight (called by `serve()`). */
  async detach(): Promise<void> {
    clearInterval(this.#sweep)
    this.#sweep = undefined
    await this.#s.settled()
    await this.#s.status?.stop()
    this.#s.status = undefined
    this.#ready = undefined
  }

  /** Mounts `/__onepipe/auth/*` and, with a private key, `/.well-known/jwks.json` (called by `serve()`). */
  routes(app: unknown, rt?: RuntimeContext): void {
    const s = this.#s
    if (rt) {
      s.db ??= rt.db
      s.cache ??= rt.cache
      s.log = rt.logger.child({ auth: this.name })
    }
    mountAuthRoutes(app as Hono, this, {
      logger: () => s.log,
      address: (c) => s.address(c),
      secureCookies: (c) => s.secureCookies(c),
      sessionOfRefresh: (token) => this.#sessions.sessionOfRefresh(token),
      checkOrigin: (req) => this.#authn.checkOrigin(fetchView(req)),
      csrfToken: (sid) => csrfToken(s.keys.csrf, sid),
      csrfValid: (sid, got) => csrfMatches(s.keys.csrf, sid, got),
      refreshTtlSec: Math.round(s.c.refreshTtlMs / 1000),
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
    if (this.#s.ownDb) await this.#s.db?.close()
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
    return this.#authn.view(v)
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
    return this.#authn.now(v)
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
  verifyAccessToken(token: string): Promise<AuthCaller> {
    return this.#authn.verifyAccessToken(token)
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
  login(email: string, password: string, o: { address?: string } = {}): Promise<IssuedSession> {
    return this.#sessions.login(email, password, o)
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
  refresh(refreshToken: string): Promise<IssuedSession> {
    return this.#sessions.refresh(refreshToken)
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
  logout(o: { sessionId: string } | { refreshToken: string } | { userId: string; all: true }): Promise<void> {
    return this.#sessions.logout(o)
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
    return { keys: this.#s.keys.publicJwk ? [{ ...this.#s.keys.publicJwk }] : [] }
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
  /** How to read a login's client address for throttling (default: the socket's, or X-Forwarded-For from proxies trusted by `serve({ trustProxy })`, else ONEPIPE_TRUSTED_PROXIES). */
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
