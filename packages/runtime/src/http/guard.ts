import { ConfigError } from '@onepipe/core'
import { AuthError, can, type Auth, errorResponse, requestIdOf, requestView, respondAuthError, respondError, type AuthProvider, type AuthUser, type Logger } from '@onepipe/sdk'
import type { Context, MiddlewareHandler } from 'hono'

/** Who may call OnePipe's own routes, as serve() was told. */
export interface Guard {
  /** The caller of a request, null when it sent no credentials; throws an AuthError for bad ones. */
  authenticate(c: Context): Promise<AuthUser | null> | AuthUser | null
  /** Whether roles are checked (OnePipe's Auth) or left to a custom provider. */
  checksRoles: boolean
  /** Routes anyone may call, from `serve({ public })`. */
  public: true | readonly string[]
}

interface Rule {
  method: string | undefined
  path: string
  prefix: boolean
}

/**
 * Compiles `serve({ public })` patterns: `"GET /__onepipe/flows/orders/*"`,
 * `"/rpc/quote"` (any method), a trailing `*` matching the rest of a path.
 *
 * @throws ConfigError `INVALID_PUBLIC_ROUTE` for a pattern that is not `[METHOD] /path[*]`
 */
export function publicRules(patterns: readonly string[]): Rule[] {
  return patterns.map((p) => {
    const m = /^(?:(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)\s+)?(\/\S*)$/.exec(p.trim())
    if (!m?.[2]) throw new ConfigError('INVALID_PUBLIC_ROUTE', `Public route "${p}" must look like "GET /__onepipe/flows/orders/*" or "/rpc/quote"`)
    const prefix = m[2].endsWith('*')
    return { method: m[1], path: prefix ? m[2].slice(0, -1) : m[2], prefix }
  })
}

function matches(rules: readonly Rule[], method: string, path: string): boolean {
  return rules.some((r) => (r.method === undefined || r.method === method || (r.method === 'GET' && method === 'HEAD')) && (r.prefix ? path.startsWith(r.path) : path === r.path))
}

/** Requests the guard has authenticated, so the limits keyed by caller that run after it do not ask again. */
const authenticated = new WeakSet<Context>()

/**
 * Tells the caller of a request to the rate limits keyed by user or API key,
 * which run after authentication: on `/__onepipe/*` and `/rpc/*` the guard
 * has already set it (the `user` context variable), elsewhere (REST routes,
 * `/__onepipe/auth/*`) it is asked here and set the same way. OnePipe's Auth
 * answers once per request, so a REST route guarded by the same Auth does
 * not check the credentials twice. Bad credentials leave the request
 * anonymous (it spends its address's budget); its route refuses it.
 *
 * @example
 * ```ts
 * const identify = identifyCaller(guard)
 * app.use('*', async (c, next) => { await identify(c); return perUser(c, next) })
 * ```
 */
export function identifyCaller(g: Guard): (c: Context) => Promise<void> {
  return async (c) => {
    if (authenticated.has(c) || c.get('user' as never) !== undefined) return
    let user: AuthUser | null
    try {
      user = await g.authenticate(c)
    } catch {
      return
    }
    if (user) c.set('user' as never, user as never)
  }
}

/**
 * The gate in front of `/__onepipe/*` and `/rpc/*`. A request needs a
 * caller (401 without one) unless its route is public; with OnePipe's Auth,
 * `/__onepipe/*` also needs a role: reading (GET, HEAD) `viewer`
 * (`onepipe:read`), anything else `operator` (`onepipe:write`), else 403.
 * `/rpc/*` is the app's own API: any authenticated caller, like a REST
 * route with `.auth()`. The Auth's own routes (`/__onepipe/auth/*`) decide
 * for themselves (login is public, accounts need admin).
 *
 * @example
 * ```ts
 * app.use('/__onepipe/*', guardMiddleware(guard, logger))
 * ```
 */
export function guardMiddleware(g: Guard, logger: Logger): MiddlewareHandler {
  const rules = g.public === true ? [] : publicRules(g.public)
  const open = g.public === true
  return async (c: Context, next) => {
    const method = c.req.method
    const path = c.req.path
    if (path.startsWith('/__onepipe/auth/')) return next()
    // The dashboard's files hold no data (every call the page makes is checked here): anyone may load them.
    if ((method === 'GET' || method === 'HEAD') && (path === '/__onepipe/dashboard' || path.startsWith('/__onepipe/dashboard/'))) return next()
    let user: AuthUser | null
    authenticated.add(c)
    try {
      user = await g.authenticate(c)
    } catch (e) {
      // Bad credentials on a public route are ignored, as if none were sent.
      if (open || matches(rules, method, path)) return next()
      return e instanceof AuthError ? respondAuthError(c, e, logger) : respondError(c, e, logger)
    }
    if (user) c.set('user' as never, user as never)
    if (open || matches(rules, method, path)) return next()
    if (!user) return errorResponse(401, 'UNAUTHORIZED', 'Authentication required; send Authorization: Bearer <token> or X-API-Key', requestIdOf(c), undefined, { 'www-authenticate': 'Bearer' })
    if (g.checksRoles && path.startsWith('/__onepipe/')) {
      const need = method === 'GET' || method === 'HEAD' ? 'onepipe:read' : 'onepipe:write'
      if (!can(user, need)) return errorResponse(403, 'FORBIDDEN', `This route needs the ${need === 'onepipe:read' ? 'viewer' : 'operator'} role (${need})`, requestIdOf(c))
    }
    return next()
  }
}

/** OnePipe's Auth guards with roles. */
export function authGuard(auth: Auth, pub: true | readonly string[]): Guard {
  return { authenticate: (c) => auth.authenticateView(requestView(c)), checksRoles: true, public: pub }
}

/** A custom provider guards without roles: it decides who may call by itself. */
export function providerGuard(provider: AuthProvider, pub: true | readonly string[]): Guard {
  return { authenticate: (c) => provider(c.req.raw), checksRoles: false, public: pub }
}
