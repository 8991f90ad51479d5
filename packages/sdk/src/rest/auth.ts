import { timingSafeEqual } from 'node:crypto'
import type { RequestView } from '../http/view.js'

/**
 * The authenticated caller. An `Auth` fills every field but `email` (people
 * only) and `applicationId` (API keys only); a plain {@link AuthProvider}
 * needs only `id`.
 *
 * @example
 * ```ts
 * { id: '0b9…', kind: 'user', email: 'ada@example.com', roles: ['operator'], permissions: ['onepipe:read', 'onepipe:write'], sessionId: '5c1…' }
 * { id: 'key:7f2…', kind: 'application', applicationId: '7f2…', roles: ['viewer'], permissions: ['onepipe:read'] }
 * ```
 */
export interface AuthUser {
  id: string
  /** A person with an account, or an application calling with an API key. */
  kind?: 'user' | 'application'
  email?: string
  roles?: string[]
  /** What the roles grant (see `can()`). */
  permissions?: string[]
  /** The application an API key belongs to: the only one whose data the key may see. */
  applicationId?: string
  /** The session (refresh-token family) an access token belongs to; logout ends it. */
  sessionId?: string
  [key: string]: unknown
}

/**
 * Decides who sent a request: returns the user, or `null` for an anonymous
 * request (which protected routes answer with 401). Throwing a OnePipeError
 * below 500 (an `AuthError`) answers with it; anything else thrown is a 500.
 */
export type AuthProvider = (request: Request) => Promise<AuthUser | null> | AuthUser | null

/**
 * An object that authenticates requests, such as a built `Auth`:
 * `REST.auth()` and `serve({ auth })` take one as well as a plain
 * {@link AuthProvider} function.
 *
 * @example
 * ```ts
 * const byHeader: Authenticator = { authenticate: async (req) => (req.headers.get('x-ops') === 'yes' ? { id: 'ops' } : null) }
 * ```
 */
export interface Authenticator {
  authenticate(request: Request): Promise<AuthUser | null>
  /** The same from a {@link RequestView}, when the authenticator can (cheaper on Node: no Fetch Request is built). */
  authenticateView?(view: RequestView): Promise<AuthUser | null>
  /** The caller when it can be told at once (null: no credentials), or undefined to ask `authenticateView`. */
  authenticateNow?(view: RequestView): AuthUser | null | undefined
}

/**
 * The function form of a provider or an {@link Authenticator}.
 *
 * @example
 * ```ts
 * const fn = toAuthProvider(auth) // (req) => auth.authenticate(req)
 * ```
 */
export function toAuthProvider(p: AuthProvider | Authenticator): AuthProvider {
  if (typeof p === 'function') return p
  return (req) => p.authenticate(req)
}

/**
 * `Authorization: Bearer <token>` checked by `verify`.
 *
 * @example
 * ```ts
 * const provider = bearerProvider(async (token) => (token === process.env.API_TOKEN ? { id: 'ops' } : null))
 * ```
 */
export function bearerProvider(verify: (token: string) => Promise<AuthUser | null> | AuthUser | null): AuthProvider {
  return (req) => {
    const h = req.headers.get('authorization')
    const m = h ? /^Bearer\s+(.+)$/i.exec(h) : null
    return m?.[1] ? verify(m[1]) : null
  }
}

/**
 * A fixed `X-API-Key` (compared in constant time) mapped to one user.
 *
 * @example
 * ```ts
 * const provider = fixedApiKeyProvider(process.env.OPS_KEY!, { id: 'ops', roles: ['operator'] })
 * ```
 */
export function fixedApiKeyProvider(key: string, user: AuthUser): AuthProvider {
  const want = Buffer.from(key)
  return (req) => {
    const got = Buffer.from(req.headers.get('x-api-key') ?? '')
    return got.length === want.length && timingSafeEqual(got, want) ? user : null
  }
}
