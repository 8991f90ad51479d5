import type { RequestView } from '../http/view.js'
import { apiKeyMatches, apiKeyPrefix } from './apikeys.js'
import { COOKIE, csrfMatches, readCookie } from './cookies.js'
import { AuthError } from './errors.js'
import * as sql from './sql.js'
import type { AuthState } from './state.js'
import type { AuthCaller } from './types.js'

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const TOUCH_MS = 60_000

/**
 * @internal How an Auth tells who sent a request (`Auth.authenticate`,
 * `authenticateView`, `authenticateNow`, `verifyAccessToken`): a Bearer
 * access token, an API key or the session cookie, checked against the live
 * state of its session, user or key.
 */
export class Authentication {
  readonly #s: AuthState
  readonly #memo = new WeakMap<object, Promise<AuthCaller | null>>()
  readonly #touched = new Map<string, number>()

  constructor(state: AuthState) {
    this.#s = state
  }

  /** The caller of a request, answered once per request (see `Auth.authenticateView`). */
  view(v: RequestView): Promise<AuthCaller | null> {
    let p = this.#memo.get(v.key)
    if (!p) {
      p = this.#authenticate(v)
      this.#memo.set(v.key, p)
    }
    return p
  }

  /** The caller when it can be told without waiting, else undefined (see `Auth.authenticateNow`). */
  now(v: RequestView): AuthCaller | null | undefined {
    const authz = v.header('authorization')
    if (authz === undefined) return v.header('x-api-key') === undefined && v.header('cookie') === undefined ? null : undefined
    if (authz.length < 8 || authz.slice(0, 7).toLowerCase() !== 'bearer ') return undefined
    const claims = this.#s.tokens.peek(authz.slice(7).trim())
    if (!claims) return undefined
    const st = this.#s.status?.peekSession(claims.sid)
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
      this.checkOrigin(req)
      if (!csrfMatches(this.#s.keys.csrf, user.sessionId ?? '', h.get('x-csrf-token'))) {
        throw new AuthError('CSRF_FAILED', 'A request authenticated by cookie that changes state needs the X-CSRF-Token header (the onepipe_csrf cookie)')
      }
    }
    return user
  }

  /** Refuses a browser request from another site: `Origin` (when sent) must be this host or an allowed origin. */
  checkOrigin(req: RequestView): void {
    const origin = req.header('origin')
    if (origin === undefined) {
      if (req.header('sec-fetch-site') === 'cross-site') throw new AuthError('CSRF_FAILED', 'Cross-site requests may not use the session cookie')
      return
    }
    if (this.#s.c.allowedOrigins.includes(origin)) return
    let host: string | undefined
    try {
      host = new URL(origin).host
    } catch {
      host = undefined
    }
    // Hosts, not schemes: behind a TLS-terminating proxy the app sees http:// while the browser says https://.
    if (host === undefined || host !== new URL(req.url()).host) throw new AuthError('CSRF_FAILED', 'The request comes from an origin this app does not allow (Origin header); add it to ALLOWED_ORIGINS or .allowedOrigins()')
  }

  /** The caller an access token stands for, checked against its session's live state (see `Auth.verifyAccessToken`). */
  async verifyAccessToken(token: string): Promise<AuthCaller> {
    const claims = await this.#s.tokens.verify(token)
    const st = await this.#s.statusCache().session(claims.sid)
    if (st?.disabled && st.userId === claims.sub) throw new AuthError('ACCOUNT_DISABLED', 'The account is disabled')
    if (!st || st.userId !== claims.sub || st.revoked) throw new AuthError('TOKEN_REVOKED', 'The session has ended; log in again')
    return { id: claims.sub, kind: 'user', email: st.email, roles: st.roles, permissions: st.permissions, sessionId: claims.sid }
  }

  async #fromApiKey(key: string): Promise<AuthCaller> {
    const prefix = apiKeyPrefix(key)
    const k = prefix === undefined ? undefined : await this.#s.statusCache().apiKey(prefix)
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
    this.#s.track(sql.touchApiKey(this.#s.database(), id)).catch((err: unknown) => this.#s.log.warn({ err, apiKeyId: id }, 'auth: recording an API key use failed'))
  }
}
