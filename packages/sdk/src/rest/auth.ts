import { timingSafeEqual } from 'node:crypto'

/** The authenticated caller, as returned by an {@link AuthProvider}. */
export interface AuthUser {
  id: string
  roles?: string[]
  [key: string]: unknown
}

/**
 * Decides who sent a request: returns the user, or `null` for an anonymous
 * request (which protected routes answer with 401). Throwing is a 500.
 */
export type AuthProvider = (request: Request) => Promise<AuthUser | null> | AuthUser | null

/**
 * Ready-made auth providers.
 *
 * @example
 * ```ts
 * const auth = Auth.bearer(async (token) => (token === process.env.API_TOKEN ? { id: 'ops' } : null))
 * REST.create('admin').auth(auth).get('/', (ctx) => ({ hi: ctx.user?.id })).build()
 * ```
 */
export const Auth = {
  /** `Authorization: Bearer <token>` checked by `verify`. */
  bearer(verify: (token: string) => Promise<AuthUser | null> | AuthUser | null): AuthProvider {
    return (req) => {
      const h = req.headers.get('authorization')
      const m = h ? /^Bearer\s+(.+)$/i.exec(h) : null
      return m?.[1] ? verify(m[1]) : null
    }
  },
  /** A fixed `X-API-Key` (compared in constant time) mapped to one user. */
  apiKey(key: string, user: AuthUser): AuthProvider {
    const want = Buffer.from(key)
    return (req) => {
      const got = Buffer.from(req.headers.get('x-api-key') ?? '')
      return got.length === want.length && timingSafeEqual(got, want) ? user : null
    }
  },
}
