import { parseDuration, ValidationError, type Logger } from '@onepipe/core'
import type { Context, Hono } from 'hono'
import { intParam, readJson } from '../http/index.js'
import type { ApiKeys, Applications, Users } from './accounts.js'
import { COOKIE, readCookie, REFRESH_COOKIE_PATH, setCookie } from './cookies.js'
import { AuthError, respondAuthError } from './errors.js'
import type { SigningAlgorithm } from './keys.js'
import { can, ONEPIPE_PERMISSIONS } from './roles.js'
import type { AuthCaller, IssuedSession } from './types.js'

/** What the routes use of their Auth: its public surface, named structurally so this file needs no import of auth.ts. */
interface RoutedAuth {
  readonly algorithm: SigningAlgorithm
  readonly users: Users
  readonly applications: Applications
  readonly apiKeys: ApiKeys
  login(email: string, password: string, o?: { address?: string }): Promise<IssuedSession>
  refresh(refreshToken: string): Promise<IssuedSession>
  logout(o: { sessionId: string } | { refreshToken: string } | { userId: string; all: true }): Promise<void>
  authenticate(req: Request): Promise<AuthCaller | null>
  jwks(): { keys: Record<string, unknown>[] }
}

/** What the routes need from their Auth besides its public methods. */
export interface RouteDeps {
  logger(): Logger
  address(c: Context): string
  secureCookies(c: Context): boolean
  sessionOfRefresh(token: string): Promise<string | undefined>
  /** @throws AuthError CSRF_FAILED */
  checkOrigin(req: Request): void
  csrfToken(sessionId: string): string
  csrfValid(sessionId: string, got: string | undefined): boolean
  refreshTtlSec: number
}

/** Request bodies here are a few fields: 16 KiB is plenty, and keeps guessing cheap to refuse. */
const MAX_BODY = 16 * 1024
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' }

type Body = Record<string, unknown>

async function body(c: Context, optional = false): Promise<Body> {
  const v = await readJson(c, { maxBytes: MAX_BODY, optional })
  if (v === undefined) return {}
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError('request body', [{ path: '', message: 'must be a JSON object' }])
  return v as Body
}

function str(b: Body, key: string, optional: true): string | undefined
function str(b: Body, key: string, optional?: false): string
function str(b: Body, key: string, optional = false): string | undefined {
  const v = b[key]
  if (v === undefined && optional) return undefined
  if (typeof v !== 'string') throw new ValidationError('request body', [{ path: key, message: 'must be a string' }])
  return v
}

function roleList(b: Body, key: string): string[] | undefined {
  const v = b[key]
  if (v === undefined) return undefined
  if (!Array.isArray(v) || v.some((r) => typeof r !== 'string')) throw new ValidationError('request body', [{ path: key, message: 'must be a list of role names' }])
  return v as string[]
}

const forbidden = (message: string) => new AuthError('FORBIDDEN', message)

/**
 * Mounts Auth's HTTP surface (docs/auth.md): login, refresh, logout, me, the
 * JWKS with a private key, and the admin routes for users, applications and
 * API keys. Every failure goes through `respondError` (with
 * `WWW-Authenticate` and `Retry-After` where they apply).
 */
export function mountAuthRoutes(app: Hono, auth: RoutedAuth, d: RouteDeps): void {
  const base = '/__onepipe/auth'
  const run = (fn: (c: Context) => Promise<Response>) => async (c: Context) => {
    try {
      return await fn(c)
    } catch (e) {
      return respondAuthError(c, e, d.logger())
    }
  }

  const sessionResponse = (c: Context, s: IssuedSession, cookies: boolean, status: 200 | 201 = 200): Response => {
    if (!cookies) {
      const { user, accessToken, refreshToken, tokenType, expiresIn, refreshExpiresIn } = s
      return c.json({ user, accessToken, refreshToken, tokenType, expiresIn, refreshExpiresIn }, status, NO_STORE)
    }
    const secure = d.secureCookies(c)
    const csrf = d.csrfToken(s.sessionId)
    c.header('set-cookie', setCookie(COOKIE.access, s.accessToken, { maxAgeSec: s.expiresIn, path: '/', httpOnly: true, secure }), { append: true })
    c.header('set-cookie', setCookie(COOKIE.refresh, s.refreshToken, { maxAgeSec: s.refreshExpiresIn, path: REFRESH_COOKIE_PATH, httpOnly: true, secure }), { append: true })
    c.header('set-cookie', setCookie(COOKIE.csrf, csrf, { maxAgeSec: s.refreshExpiresIn, path: '/', httpOnly: false, secure }), { append: true })
    return c.json({ user: s.user, expiresIn: s.expiresIn, refreshExpiresIn: s.refreshExpiresIn, csrfToken: csrf }, status, NO_STORE)
  }

  const clearCookies = (c: Context): void => {
    const secure = d.secureCookies(c)
    c.header('set-cookie', setCookie(COOKIE.access, '', { maxAgeSec: 0, path: '/', httpOnly: true, secure }), { append: true })
    c.header('set-cookie', setCookie(COOKIE.refresh, '', { maxAgeSec: 0, path: REFRESH_COOKIE_PATH, httpOnly: true, secure }), { append: true })
    c.header('set-cookie', setCookie(COOKIE.csrf, '', { maxAgeSec: 0, path: '/', httpOnly: false, secure }), { append: true })
  }

  /** The session of a refresh cookie, once the request proved it comes from the app's own page (Origin and CSRF token). */
  const cookieSession = async (c: Context, token: string): Promise<string> => {
    d.checkOrigin(c.req.raw)
    const sid = await d.sessionOfRefresh(token)
    if (!sid) throw new AuthError('TOKEN_INVALID', 'The refresh token is not known; log in again')
    if (!d.csrfValid(sid, c.req.header('x-csrf-token'))) throw new AuthError('CSRF_FAILED', 'A request authenticated by cookie that changes state needs the X-CSRF-Token header (the onepipe_csrf cookie)')
    return sid
  }

  app.post(
    `${base}/login`,
    run(async (c) => {
      const origin = c.req.header('origin')
      // Login CSRF (logging a victim into the attacker's account) is refused like any cross-site cookie request.
      if (origin !== undefined) d.checkOrigin(c.req.raw)
      const b = await body(c)
      const mode = str(b, 'mode', true)
      if (mode !== undefined && mode !== 'cookie' && mode !== 'token') throw new ValidationError('request body', [{ path: 'mode', message: 'must be "cookie" or "token"' }])
      const s = await auth.login(str(b, 'email'), str(b, 'password'), { address: d.address(c) })
      return sessionResponse(c, s, mode === 'cookie' || (mode === undefined && origin !== undefined))
    }),
  )

  app.post(
    `${base}/refresh`,
    run(async (c) => {
      const given = str(await body(c, true), 'refreshToken', true)
      if (given !== undefined) return sessionResponse(c, await auth.refresh(given), false)
      const cookie = readCookie(c.req.header('cookie'), COOKIE.refresh)
      if (cookie === undefined) throw new AuthError('UNAUTHORIZED', 'Send the refresh token as { "refreshToken": … } or in the onepipe_refresh cookie')
      await cookieSession(c, cookie)
      return sessionResponse(c, await auth.refresh(cookie), true)
    }),
  )

  app.post(
    `${base}/logout`,
    run(async (c) => {
      const b = await body(c, true)
      const given = str(b, 'refreshToken', true)
      const all = b.all === true
      if (given !== undefined && !all) await auth.logout({ refreshToken: given })
      else {
        const cookie = readCookie(c.req.header('cookie'), COOKIE.refresh)
        if (cookie !== undefined && !all && c.req.header('authorization') === undefined) await auth.logout({ sessionId: await cookieSession(c, cookie) })
        else {
          const user = await auth.authenticate(c.req.raw)
          if (!user?.sessionId) throw new AuthError('UNAUTHORIZED', 'Send the refresh token, the session cookie or a Bearer access token to log out')
          await auth.logout(all ? { userId: user.id, all: true } : { sessionId: user.sessionId })
        }
      }
      clearCookies(c)
      return c.body(null, 204)
    }),
  )

  app.get(
    `${base}/me`,
    run(async (c) => {
      const user = await auth.authenticate(c.req.raw)
      if (!user) throw new AuthError('UNAUTHORIZED', 'Authentication required; send valid credentials')
      return c.json({ user }, 200, { 'cache-control': 'no-store' })
    }),
  )

  if (auth.algorithm !== 'HS256') {
    app.get('/.well-known/jwks.json', (c) => c.json(auth.jwks(), 200, { 'cache-control': 'public, max-age=300' }))
  }

  // ─── Administration ────────────────────────────────────────────────

  /** The caller, if it may administer; an application's key only its own application. */
  const admin = async (c: Context, o: { peopleOnly?: boolean; applicationId?: string } = {}): Promise<AuthCaller> => {
    const user = await auth.authenticate(c.req.raw)
    if (!user) throw new AuthError('UNAUTHORIZED', 'Authentication required; send valid credentials')
    if (!can(user, ONEPIPE_PERMISSIONS.admin)) throw forbidden('This needs the admin role')
    if (o.peopleOnly && user.kind !== 'user') throw forbidden('An API key cannot manage accounts or create applications; a person with the admin role can')
    if (o.applicationId !== undefined && !can(user, ONEPIPE_PERMISSIONS.admin, { applicationId: o.applicationId })) throw forbidden('An API key may manage only its own application')
    return user
  }

  app.post(
    `${base}/users`,
    run(async (c) => {
      await admin(c, { peopleOnly: true })
      const b = await body(c)
      const roles = roleList(b, 'roles')
      return c.json({ user: await auth.users.create({ email: str(b, 'email'), password: str(b, 'password'), ...(roles ? { roles } : {}) }) }, 201)
    }),
  )
  app.get(
    `${base}/users`,
    run(async (c) => {
      await admin(c, { peopleOnly: true })
      const limit = intParam(c, 'limit')
      const after = c.req.query('after')
      return c.json({ users: await auth.users.list({ ...(limit === undefined ? {} : { limit }), ...(after ? { after } : {}) }) })
    }),
  )
  app.get(
    `${base}/users/:id`,
    run(async (c) => {
      await admin(c, { peopleOnly: true })
      return c.json({ user: await auth.users.get(c.req.param('id') ?? '') })
    }),
  )
  app.post(
    `${base}/users/:id/disable`,
    run(async (c) => {
      const me = await admin(c, { peopleOnly: true })
      const id = c.req.param('id') ?? ''
      if (id === me.id) throw new ValidationError('user', [{ path: 'id', message: 'an admin cannot disable their own account (ask another admin)' }])
      return c.json({ user: await auth.users.disable(id) })
    }),
  )
  app.post(
    `${base}/users/:id/enable`,
    run(async (c) => {
      await admin(c, { peopleOnly: true })
      return c.json({ user: await auth.users.enable(c.req.param('id') ?? '') })
    }),
  )
  app.put(
    `${base}/users/:id/roles`,
    run(async (c) => {
      await admin(c, { peopleOnly: true })
      const roles = roleList(await body(c), 'roles')
      if (!roles) throw new ValidationError('request body', [{ path: 'roles', message: 'is required' }])
      return c.json({ user: await auth.users.setRoles(c.req.param('id') ?? '', roles) })
    }),
  )

  app.post(
    `${base}/applications`,
    run(async (c) => {
      await admin(c, { peopleOnly: true })
      return c.json({ application: await auth.applications.create({ name: str(await body(c), 'name') }) }, 201)
    }),
  )
  app.get(
    `${base}/applications`,
    run(async (c) => {
      const user = await admin(c)
      return c.json({ applications: await auth.applications.list(user.kind === 'application' && user.applicationId ? { only: user.applicationId } : {}) })
    }),
  )
  app.post(
    `${base}/applications/:id/keys`,
    run(async (c) => {
      const appId = c.req.param('id') ?? ''
      await admin(c, { applicationId: appId })
      const b = await body(c)
      const roles = roleList(b, 'roles')
      return c.json(await auth.apiKeys.create(appId, { name: str(b, 'name'), ...(roles ? { roles } : {}) }), 201, NO_STORE)
    }),
  )
  app.get(
    `${base}/applications/:id/keys`,
    run(async (c) => {
      const appId = c.req.param('id') ?? ''
      await admin(c, { applicationId: appId })
      await auth.applications.get(appId)
      return c.json({ keys: await auth.apiKeys.list(appId) })
    }),
  )
  /** Loads a key after the caller proved it may administer, then checks the key's application is the caller's to manage. */
  const ownKey = async (c: Context): Promise<string> => {
    await admin(c)
    const key = await auth.apiKeys.get(c.req.param('id') ?? '')
    await admin(c, { applicationId: key.applicationId })
    return key.id
  }
  app.post(
    `${base}/keys/:id/disable`,
    run(async (c) => c.json({ apiKey: await auth.apiKeys.disable(await ownKey(c)) })),
  )
  app.post(
    `${base}/keys/:id/rotate`,
    run(async (c) => {
      const id = await ownKey(c)
      const overlap = str(await body(c, true), 'overlap', true)
      return c.json(await auth.apiKeys.rotate(id, overlap === undefined ? {} : { overlapMs: parseOverlap(overlap) }), 201, NO_STORE)
    }),
  )
}

function parseOverlap(s: string): number {
  try {
    return parseDuration(s)
  } catch {
    throw new ValidationError('request body', [{ path: 'overlap', message: 'must be a duration such as "1h" or "30m"' }])
  }
}
