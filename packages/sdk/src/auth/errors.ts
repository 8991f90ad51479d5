import { OnePipeError, stderrLogger, type Logger } from '@onepipe/core'
import type { Context } from 'hono'
import { respondError } from '../http/index.js'

/**
 * The codes an {@link AuthError} carries, with their HTTP status.
 *
 * @example
 * ```ts
 * AUTH_ERROR_STATUS.TOO_MANY_ATTEMPTS // 429
 * ```
 */
export const AUTH_ERROR_STATUS = {
  /** No credentials at all on a route that needs them. */
  UNAUTHORIZED: 401,
  /** Unknown email or wrong password: one answer for both, so accounts cannot be discovered. */
  INVALID_CREDENTIALS: 401,
  /** The token's `exp` has passed (refresh it, or log in again). */
  TOKEN_EXPIRED: 401,
  /** Malformed, badly signed, wrong algorithm, issuer or audience, not yet valid, unknown. */
  TOKEN_INVALID: 401,
  /** The session was ended: logout, reuse of a refresh token, an administrator. */
  TOKEN_REVOKED: 401,
  /** The account was disabled by an administrator. */
  ACCOUNT_DISABLED: 401,
  /** An `X-API-Key` that is malformed, unknown, disabled or expired. */
  API_KEY_INVALID: 401,
  /** A cookie-authenticated request that changes state without the CSRF token, or from another origin. */
  CSRF_FAILED: 403,
  /** Authenticated, but without the role or permission the route needs. */
  FORBIDDEN: 403,
  /** Too many failed logins for this account or from this address; wait `Retry-After` seconds. */
  TOO_MANY_ATTEMPTS: 429,
} as const

/** A code from {@link AUTH_ERROR_STATUS}. */
export type AuthErrorCode = keyof typeof AUTH_ERROR_STATUS

/**
 * An authentication or authorization failure. Its message never holds a
 * secret (no token, password or key, not even part of one), so it can be
 * sent and logged as it is.
 *
 * @example
 * ```ts
 * try { await auth.verifyAccessToken(token) } catch (e) {
 *   if (e instanceof AuthError && e.code === 'TOKEN_EXPIRED') await refresh()
 * }
 * ```
 */
export class AuthError extends OnePipeError {
  /** Seconds before another attempt may succeed (429 only). */
  readonly retryAfterSeconds: number | undefined

  constructor(code: AuthErrorCode, message: string, options: { details?: Record<string, unknown>; retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(code, message, {
      status: AUTH_ERROR_STATUS[code],
      retryable: code === 'TOO_MANY_ATTEMPTS',
      ...(options.details ? { details: options.details } : {}),
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    })
    this.retryAfterSeconds = options.retryAfterSeconds
  }
}

/**
 * Answers a thrown value through OnePipe's one error path (`respondError`),
 * adding what HTTP says an auth failure carries: `WWW-Authenticate: Bearer`
 * on a 401 (RFC 6750 §3) and `Retry-After` on a 429 (RFC 6585 §4).
 *
 * @example
 * ```ts
 * app.use('/rpc/*', async (c, next) => {
 *   try { c.set('user', await auth.authenticate(c.req.raw)) } catch (e) { return respondAuthError(c, e, logger) }
 *   await next()
 * })
 * ```
 */
export function respondAuthError(c: Context, e: unknown, logger: Logger = stderrLogger): Response {
  const res = respondError(c, e, logger)
  if (res.status === 401) res.headers.set('www-authenticate', 'Bearer')
  if (e instanceof AuthError && e.retryAfterSeconds !== undefined) res.headers.set('retry-after', String(e.retryAfterSeconds))
  return res
}
