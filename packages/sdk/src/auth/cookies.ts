import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * The cookie names a browser session uses.
 *
 * @example
 * ```ts
 * const csrf = document.cookie.match(new RegExp(`${COOKIE.csrf}=([^;]+)`))?.[1] // send it as X-CSRF-Token
 * ```
 */
export const COOKIE = { access: 'onepipe_access', refresh: 'onepipe_refresh', csrf: 'onepipe_csrf' } as const
/** The path the refresh cookie is sent to: only the routes that use it. */
export const REFRESH_COOKIE_PATH = '/__onepipe/auth'

/** One cookie of a `Cookie` header, or undefined. */
export function readCookie(header: string | null | undefined, name: string): string | undefined {
  if (!header) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() !== name) continue
    const v = part.slice(eq + 1).trim()
    return v === '' ? undefined : v
  }
  return undefined
}

/** A `Set-Cookie` value. `maxAgeSec` 0 deletes the cookie. */
export function setCookie(name: string, value: string, o: { maxAgeSec: number; path: string; httpOnly: boolean; secure: boolean }): string {
  return [`${name}=${value}`, `Max-Age=${o.maxAgeSec}`, `Path=${o.path}`, 'SameSite=Lax', ...(o.httpOnly ? ['HttpOnly'] : []), ...(o.secure ? ['Secure'] : [])].join('; ')
}

/**
 * The CSRF token of a session: an HMAC of its id (the "signed double-submit
 * cookie" of the OWASP CSRF Prevention Cheat Sheet). It lives in a cookie
 * the page can read and must come back in `X-CSRF-Token`; because it is
 * bound to the session, a cookie planted by a sibling subdomain does not
 * pass, and nothing is stored.
 */
export function csrfToken(key: Buffer, sessionId: string): string {
  return createHmac('sha256', key).update(`csrf:${sessionId}`).digest('base64url')
}

/** Whether `got` is the CSRF token of `sessionId`, compared in constant time. */
export function csrfMatches(key: Buffer, sessionId: string, got: string | undefined | null): boolean {
  if (!got) return false
  const a = Buffer.from(got)
  const b = Buffer.from(csrfToken(key, sessionId))
  return a.length === b.length && timingSafeEqual(a, b)
}
