import type { CacheLike, Database } from '@onepipe/core'
import type { Context } from 'hono'
import type { AuthUser } from '../rest/auth.js'

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

/** @internal Everything a built Auth runs with. */
export interface AuthConfig {
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
