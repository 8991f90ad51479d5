import {
  assertDatabase,
  ConfigError,
  Database,
  MemoryCache,
  registerPrimitive,
  stderrLogger,
  validate,
  type CacheLike,
  type Component,
  type Logger,
  type RuntimeContext,
  type StandardSchemaV1,
} from '@onepipe/core'
import { Hono, type Context, type MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { cors } from 'hono/cors'
import { toAuthProvider, type Authenticator, type AuthProvider, type AuthUser } from './auth.js'
import { can, hasRole } from '../auth/roles.js'
import { respondAuthError } from '../auth/errors.js'
import { createContext, type RestContext } from './context.js'
import { trustProxies, type RateLimit, type TrustProxy } from '../ratelimit/index.js'
import { errorResponse, headerOf, parseSize, readJson, requestIdOf, requestInfo, requestView, respondError, type RequestView, type Size } from '../http/index.js'
import { buildOpenApi, type OpenApiInfo, type RouteDoc } from './openapi.js'

type Schema = StandardSchemaV1
type Out<S, D> = S extends Schema ? StandardSchemaV1.InferOutput<S> : D

/** Per-route options: schemas (validated before the handler runs) and docs. */
export interface RouteOptions<B extends Schema | undefined = undefined, Q extends Schema | undefined = undefined, P extends Schema | undefined = undefined> {
  body?: B
  query?: Q
  params?: P
  /** Documents the success response in OpenAPI. */
  response?: Schema
  /**
   * The status of a success (default 200): a plain value the handler returns
   * is sent with it, and OpenAPI documents it (`201` for a route that
   * creates, `202` for one that queues work).
   */
  status?: 200 | 201 | 202
  summary?: string
  description?: string
  tags?: string[]
  /** `false` makes the route public when the REST has `.auth()`; `{ roles }` is the older spelling of `roles`. */
  auth?: boolean | { roles: string[] }
  /**
   * The caller must hold one of these roles (`admin` holds every role,
   * `operator` holds `viewer`): 401 `UNAUTHORIZED` without credentials, 403
   * `FORBIDDEN` with the wrong role. Needs `.auth()` on the REST.
   */
  roles?: string[]
  /**
   * The caller must hold this permission (or every one of a list), as
   * granted by its roles (see `can()`): 401 without credentials, 403
   * `FORBIDDEN` without it. Needs `.auth()` on the REST.
   */
  permission?: string | string[]
  /** Overrides the REST's body size limit for this route. */
  maxBodySize?: Size
  /** Overrides the REST's limit on a multipart (upload) body for this route. */
  maxUploadSize?: Size
  /**
   * Budgets this route spends, after authentication (so `by: 'user'` and
   * `'apiKey'` see the caller): 429 with `Retry-After` over budget.
   */
  rateLimit?: RateLimit | RateLimit[]
}

/** A route handler: return a Response, a plain value (200 JSON), or nothing (204). */
export type Handler<B extends Schema | undefined, Q extends Schema | undefined, P extends Schema | undefined> = (
  ctx: RestContext<Out<P, Record<string, string>>, Out<Q, Record<string, string>>, Out<B, unknown>>,
) => unknown

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

interface RouteDef {
  method: Method
  path: string
  options: RouteOptions<Schema | undefined, Schema | undefined, Schema | undefined>
  handler: (ctx: RestContext) => unknown
}

interface RestState {
  name: string
  basePath: string
  db: Database | undefined
  cache: CacheLike | undefined
  auth: AuthProvider | undefined
  authView: ((v: RequestView) => Promise<AuthUser | null>) | undefined
  authNow: ((v: RequestView) => AuthUser | null | undefined) | undefined
  cors: { origin: string | string[]; credentials?: boolean } | undefined
  maxBodySize: number
  maxUploadSize: number
  rateLimits: RateLimit[]
  openapi: OpenApiInfo | undefined
  routes: RouteDef[]
}

function joinPath(base: string, path: string): string {
  const p = `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`.replace(/\/+$/, '')
  return p === '' ? '/' : p
}

/**
 * Builds a REST API: routes with validated input, typed errors and OpenAPI.
 *
 * @example
 * ```ts
 * const orders = REST.create('orders')
 *   .basePath('/api/orders')
 *   .db(db)
 *   .get('/:id', async (ctx) => (await ctx.db.query('SELECT * FROM orders WHERE id = $1', [ctx.params.id]))[0] ?? ctx.notFound())
 *   .post('/', { body: z.object({ customer: z.string() }) }, async (ctx) => ctx.created(await ctx.body()))
 *   .build()
 * ```
 */
export const REST = {
  create(name: string): RESTBuilder {
    return new RESTBuilder(name)
  },
}

/** Fluent configuration for a {@link RestApi}. */
export class RESTBuilder {
  #s: RestState

  constructor(name: string) {
    this.#s = { name, basePath: '/', db: undefined, cache: undefined, auth: undefined, authView: undefined, authNow: undefined, cors: undefined, maxBodySize: 1024 * 1024, maxUploadSize: 50 * 1024 * 1024, rateLimits: [], openapi: undefined, routes: [] }
  }

  /** Prefix of every route, e.g. `/api/orders`. */
  basePath(path: string): this {
    if (!path.startsWith('/')) throw new ConfigError('INVALID_BASE_PATH', `basePath "${path}" must start with /`)
    this.#s.basePath = path
    return this
  }
  /** The database handlers get as `ctx.db` (default: the app's under serve()). */
  db(db: Database): this {
    this.#s.db = assertDatabase(db, `REST "${this.#s.name}"`)
    return this
  }
  /** The cache handlers get as `ctx.cache`. */
  cache(cache: CacheLike): this {
    this.#s.cache = cache
    return this
  }
  /**
   * Require an authenticated user on every route (unless a route says
   * `auth: false`): a built `Auth`, any {@link Authenticator}, or an
   * {@link AuthProvider} function. Credentials that are sent but wrong are
   * answered with the provider's error (`401 TOKEN_EXPIRED`, `403
   * CSRF_FAILED`…); on a public route they are ignored and the request
   * goes on without a user.
   *
   * @example
   * ```ts
   * REST.create('orders').auth(auth).get('/api/orders', { roles: ['viewer'] }, list).build()
   * ```
   */
  auth(provider: AuthProvider | Authenticator): this {
    this.#s.auth = toAuthProvider(provider)
    const viewer = typeof provider === 'object' ? provider.authenticateView?.bind(provider) : undefined
    this.#s.authView = viewer
    this.#s.authNow = typeof provider === 'object' ? provider.authenticateNow?.bind(provider) : undefined
    return this
  }
  /** Answer CORS preflights and add CORS headers for these origins. */
  cors(options: { origin: string | string[]; credentials?: boolean }): this {
    this.#s.cors = options
    return this
  }
  /** Largest accepted request body (default 1 MiB); larger → 413. */
  /**
   * The largest multipart (upload) body a route takes (default 50 MB a
   * request); larger is a 413 before it is read whole.
   *
   * @example
   * ```ts
   * REST.create('blueprints').maxUploadSize('200mb').post('/upload', async (ctx) => ctx.file('pdf'))
   * ```
   */
  maxUploadSize(size: Size): this {
    this.#s.maxUploadSize = parseSize(size)
    return this
  }

  /**
   * Budgets every route of this API spends (after authentication), on top of
   * any a route declares.
   *
   * @example
   * ```ts
   * REST.create('api').auth(auth).rateLimit(RateLimit.create('per-user').points(600).per('1m').by('user').build())
   * ```
   */
  rateLimit(...limits: RateLimit[]): this {
    this.#s.rateLimits.push(...limits)
    return this
  }

  maxBodySize(size: Size): this {
    this.#s.maxBodySize = parseSize(size)
    return this
  }
  /** Title and version for the OpenAPI document served at `/openapi.json`. */
  openapi(info: OpenApiInfo): this {
    this.#s.openapi = info
    return this
  }

  #add(method: Method, path: string, a: unknown, b: unknown): this {
    const [options, handler] = typeof a === 'function' ? [{}, a] : [a ?? {}, b]
    if (typeof handler !== 'function') throw new ConfigError('INVALID_ROUTE', `${method} ${path} on REST "${this.#s.name}" needs a handler function`)
    const o = options as RouteOptions<Schema | undefined, Schema | undefined, Schema | undefined>
    if ((o.roles !== undefined || o.permission !== undefined) && o.auth === false) {
      throw new ConfigError('INVALID_ROUTE', `${method} ${path} on REST "${this.#s.name}" is public (auth: false) yet declares roles or a permission; drop one`)
    }
    this.#s.routes.push({ method, path: joinPath(this.#s.basePath, path), options: options, handler: handler as RouteDef['handler'] })
    return this
  }

  get<Q extends Schema | undefined = undefined, P extends Schema | undefined = undefined>(path: string, handler: Handler<undefined, Q, P>): this
  get<Q extends Schema | undefined = undefined, P extends Schema | undefined = undefined>(path: string, options: RouteOptions<undefined, Q, P>, handler: Handler<undefined, Q, P>): this
  get(path: string, a: unknown, b?: unknown): this {
    return this.#add('GET', path, a, b)
  }
  post<B extends Schema | undefined = undefined, Q extends Schema | undefined = undefined, P extends Schema | undefined = undefined>(path: string, handler: Handler<B, Q, P>): this
  post<B extends Schema | undefined = undefined, Q extends Schema | undefined = undefined, P extends Schema | undefined = undefined>(path: string, options: RouteOptions<B, Q, P>, handler: Handler<B, Q, P>): this
  post(path: string, a: unknown, b?: unknown): this {
    return this.#add('POST', path, a, b)
  }
  put<B extends Schema | undefined = undefined, Q extends Schema | undefined = undefined, P extends Schema | undefined = undefined>(path: string, handler: Handler<B, Q, P>): this
  put<B extends Schema | undefined = undefined, Q extends Schema | undefined = undefined, P extends Schema | undefined = undefined>(path: string, options: RouteOptions<B, Q, P>, handler: Handler<B, Q, P>): this
  put(path: string, a: unknown, b?: unknown): this {
    return this.#add('PUT', path, a, b)
  }
  patch<B extends Schema | undefined = undefined, Q extends Schema | undefined = undefined, P extends Schema | undefined = undefined>(path: string, handler: Handler<B, Q, P>): this
  patch<B extends Schema | undefined = undefined, Q extends Schema | undefined = undefined, P extends Schema | undefined = undefined>(path: string, options: RouteOptions<B, Q, P>, handler: Handler<B, Q, P>): this
  patch(path: string, a: unknown, b?: unknown): this {
    return this.#add('PATCH', path, a, b)
  }
  delete<Q extends Schema | undefined = undefined, P extends Schema | undefined = undefined>(path: string, handler: Handler<undefined, Q, P>): this
  delete<Q extends Schema | undefined = undefined, P extends Schema | undefined = undefined>(path: string, options: RouteOptions<undefined, Q, P>, handler: Handler<undefined, Q, P>): this
  delete(path: string, a: unknown, b?: unknown): this {
    return this.#add('DELETE', path, a, b)
  }

  /** Builds the API and records it in the manifest. */
  build(): RestApi {
    if (this.#s.routes.length === 0) throw new ConfigError('REST_NO_ROUTES', `REST "${this.#s.name}" has no routes; add one with .get(), .post()…`)
    const guarded = this.#s.routes.find((r) => r.options.roles !== undefined || r.options.permission !== undefined || typeof r.options.auth === 'object')
    if (guarded && !this.#s.auth) {
      // Without a provider nobody could be checked: refuse rather than serve the route open.
      throw new ConfigError('REST_NO_AUTH', `${guarded.method} ${guarded.path} on REST "${this.#s.name}" declares roles or a permission, but the REST has no .auth(); give it one (e.g. .auth(auth))`)
    }
    const s = { ...this.#s, routes: [...this.#s.routes] }
    registerPrimitive({
      primitive: 'rest',
      name: s.name,
      infrastructure: s.db ? ['postgresql'] : ['none'],
      config: { basePath: s.basePath, routes: s.routes.map((r) => `${r.method} ${r.path}`), auth: s.auth !== undefined, cors: s.cors ?? null, maxBodySize: s.maxBodySize },
    })
    return new RestApi(s)
  }
}

/** Turns whatever a handler returned into a Response. */
function toResponse(value: unknown, requestId: string, status: number): Response {
  if (value instanceof Response) return value
  if (value === undefined || value === null) return new Response(null, { status: 204, headers: { 'x-request-id': requestId } })
  if (typeof value === 'string') return new Response(value, { status, headers: { 'content-type': 'text/plain; charset=utf-8', 'x-request-id': requestId } })
  return new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json; charset=utf-8', 'x-request-id': requestId } })
}

/**
 * A built REST API. Under `serve()` it is mounted on the app; on its own,
 * `api.request('/path')` answers in-process (handy in tests).
 *
 * @example
 * ```ts
 * const res = await api.request('/api/orders/1')
 * expect(res.status).toBe(200)
 * ```
 */
export class RestApi implements Component {
  readonly kind = 'rest'
  readonly name: string
  readonly basePath: string
  /** The Hono app holding this API's routes. */
  readonly app: Hono
  #s: RestState
  #rt: RuntimeContext | undefined
  #fallbackDb: Database | undefined
  #fallbackCache: CacheLike | undefined
  #logger: Logger = stderrLogger

  constructor(s: RestState) {
    this.#s = s
    this.name = s.name
    this.basePath = s.basePath
    this.app = new Hono()
    for (const r of s.routes) this.#mountRoute(r)
  }

  /** Answers a request in-process, as `Hono.request` does. */
  request(input: string | Request, init?: RequestInit): Promise<Response> {
    return Promise.resolve(this.app.request(input, init))
  }

  /** The Fetch handler of this API alone. */
  get fetch(): (req: Request) => Response | Promise<Response> {
    return this.app.fetch
  }

  /** Route descriptions for the OpenAPI document. */
  routeDocs(): RouteDoc[] {
    return this.#s.routes.map((r) => ({ method: r.method, path: r.path, options: r.options, tag: this.name, secured: this.#s.auth !== undefined && r.options.auth !== false }))
  }

  /** This API alone as an OpenAPI 3.1 document. */
  openapiDocument(): Record<string, unknown> {
    return buildOpenApi(this.#s.openapi ?? { title: this.name, version: '1.0.0' }, this.routeDocs())
  }

  routes(app: unknown, rt: RuntimeContext): void {
    this.#rt = rt
    this.#logger = rt.logger.child({ rest: this.name })
    ;(app as Hono).route('/', this.app)
  }

  async detach(): Promise<void> {
    this.#rt = undefined
  }

  #db = (): Database => {
    const db = this.#s.db ?? this.#rt?.db
    if (db) return db
    // Outside serve(), a REST without .db() gets the environment's database on first use.
    this.#fallbackDb ??= Database.fromEnv()
    return this.#fallbackDb
  }

  #cache = (): CacheLike => {
    const c = this.#s.cache ?? this.#rt?.cache
    if (c) return c
    this.#fallbackCache ??= new MemoryCache()
    return this.#fallbackCache
  }

  #mountRoute(r: RouteDef): void {
    const s = this.#s
    const chain: MiddlewareHandler[] = []
    const corsMw = s.cors ? cors({ origin: s.cors.origin, credentials: s.cors.credentials ?? false, exposeHeaders: ['X-Request-Id', 'Location'] }) : undefined
    if (corsMw) {
      chain.push(corsMw)
      this.app.options(r.path, corsMw, (c) => c.body(null, 204))
    }
    const hasBody = r.method !== 'GET' && r.method !== 'DELETE'
    if (hasBody) {
      const max = r.options.maxBodySize === undefined ? s.maxBodySize : parseSize(r.options.maxBodySize)
      const upload = r.options.maxUploadSize === undefined ? s.maxUploadSize : parseSize(r.options.maxUploadSize)
      chain.push(limitBody(max, upload))
    }
    const needsAuth = s.auth !== undefined && r.options.auth !== false
    const roles = r.options.roles ?? (typeof r.options.auth === 'object' ? r.options.auth.roles : undefined)
    const permissions = r.options.permission === undefined ? undefined : typeof r.options.permission === 'string' ? [r.options.permission] : r.options.permission
    const o = r.options
    // A getter: routes are mounted before serve() hands over its logger in routes(), and a handler logs through the app's.
    const self = () => this.#logger
    const deps = {
      db: this.#db,
      cache: this.#cache,
      get logger() {
        return self()
      },
      shutdown: () => this.#rt?.signal,
    }
    const limits = [...s.rateLimits, ...(o.rateLimit === undefined ? [] : Array.isArray(o.rateLimit) ? o.rateLimit : [o.rateLimit])]
    // serve({ trustProxy }) when given, as for serve()'s own limits and login throttling; else the
    // environment. Decided at the first request: routes are built before serve() attaches the API.
    let trust: TrustProxy | undefined
    const trustNow = (): TrustProxy => (trust ??= trustProxies(this.#rt?.trustProxy ?? undefined))
    const plain = !s.auth && !o.params && !o.query && !o.body && limits.length === 0
    const authNow = s.authNow
    const quickAuth = authNow !== undefined && !o.params && !o.query && !o.body && limits.length === 0
    const NONE = { hasBody: false }
    const status = r.options.status ?? 200
    const done = (out: unknown, requestId: string): Response => toResponse(out, requestId, status)
    const slow = async (c: Context, requestId: string): Promise<Response> => {
      try {
        let user: AuthUser | undefined
        if (s.auth) {
          try {
            user = (await (s.authView ? s.authView(requestView(c)) : s.auth(c.req.raw))) ?? undefined
          } catch (e) {
            // Bad credentials on a public route: the request goes on anonymous, as if none were sent.
            if (needsAuth) return respondAuthError(c, e, this.#logger)
          }
          if (needsAuth && !user) return errorResponse(401, 'UNAUTHORIZED', 'Authentication required; send valid credentials', requestId, undefined, { 'www-authenticate': 'Bearer' })
          if (roles && !roles.some((x) => hasRole(user, x))) return errorResponse(403, 'FORBIDDEN', `This route needs one of the roles: ${roles.join(', ')}`, requestId)
          if (permissions && !permissions.every((p) => can(user, p))) return errorResponse(403, 'FORBIDDEN', `This route needs the permission${permissions.length > 1 ? 's' : ''}: ${permissions.join(', ')}`, requestId)
          if (user) c.set('user' as never, user as never)
        }
        if (limits.length > 0) {
          const refused = await spend(c, limits, trustNow(), this.#cache(), requestId)
          if (refused) return refused
        }
        const validated = {
          params: o.params ? await validate(o.params, c.req.param(), 'path parameters') : undefined,
          query: o.query ? await validate(o.query, c.req.query(), 'query string') : undefined,
          body: o.body ? await validate(o.body, await readJson(c), 'request body') : undefined,
          hasBody: o.body !== undefined,
        }
        let out = r.handler(createContext(c, requestId, user, deps, validated))
        if (out instanceof Promise) out = await out
        return done(out, requestId)
      } catch (e) {
        return this.#errorToResponse(e, requestId, c)
      }
    }
    // A route with nothing to check and a handler that returns synchronously
    // answers synchronously, which keeps @hono/node-server on its fastest path.
    const handler = (c: Context): Response | Promise<Response> => {
      const requestId = requestIdOf(c)
      const info = requestInfo(c)
      if (info) {
        info.route = r.path
        info.idInResponse = true
      }
      let user: AuthUser | undefined
      if (!plain) {
        // Behind auth but with nothing else to check, a caller known at once (a token seen before)
        // keeps the synchronous path; anything else goes the full way.
        const now = quickAuth ? authNow(requestView(c)) : undefined
        if (now === undefined) return slow(c, requestId)
        if (needsAuth && !now) return errorResponse(401, 'UNAUTHORIZED', 'Authentication required; send valid credentials', requestId, undefined, { 'www-authenticate': 'Bearer' })
        if (roles && !roles.some((x) => hasRole(now ?? undefined, x))) return errorResponse(403, 'FORBIDDEN', `This route needs one of the roles: ${roles.join(', ')}`, requestId)
        if (permissions && !permissions.every((p) => can(now ?? undefined, p))) return errorResponse(403, 'FORBIDDEN', `This route needs the permission${permissions.length > 1 ? 's' : ''}: ${permissions.join(', ')}`, requestId)
        user = now ?? undefined
        if (user) c.set('user' as never, user as never)
      }
      try {
        const out = r.handler(createContext(c, requestId, user, deps, NONE))
        if (out instanceof Promise) return out.then((v) => done(v, requestId), (e: unknown) => this.#errorToResponse(e, requestId, c))
        return done(out, requestId)
      } catch (e) {
        return this.#errorToResponse(e, requestId, c)
      }
    }
    this.app.on([r.method], [r.path], ...chain, handler)
  }

  #errorToResponse(e: unknown, requestId: string, c: Context): Response {
    return respondError(c, e, this.#logger, requestId)
  }
}

/**
 * Refuses a body over `max` bytes with 413. A declared Content-Length is
 * checked straight away; a chunked body is counted while it streams.
 */
function limitBody(max: number, upload: number): MiddlewareHandler {
  const of = (limit: number) => {
    const tooLarge = (c: Context) => errorResponse(413, 'PAYLOAD_TOO_LARGE', `The request body is larger than ${limit} bytes; send a smaller body`, requestIdOf(c))
    return { tooLarge, streaming: bodyLimit({ maxSize: limit, onError: tooLarge }) }
  }
  const json = of(max)
  const multipart = of(upload)
  return async (c, next) => {
    // Uploads (multipart forms) have their own, larger limit; everything else the body limit.
    const m = /^multipart\//i.test(headerOf(c, 'content-type') ?? '') ? multipart : json
    const limit = m === multipart ? upload : max
    const declared = headerOf(c, 'content-length')
    if (declared === undefined) return m.streaming(c, next)
    if (Number(declared) > limit) return m.tooLarge(c)
    await next()
    return undefined
  }
}

/** Spends one point of each budget; the 429 of the first exhausted one, else undefined (and the headers of the tightest are kept for the answer). */
async function spend(c: Context, limits: readonly RateLimit[], trust: TrustProxy, cache: CacheLike, requestId: string): Promise<Response | undefined> {
  for (const l of limits) {
    const st = await l.consume(l.keyOf(c, trust), cache)
    if (!st.allowed) {
      const reset = String(Math.max(1, Math.ceil(st.resetMs / 1000)))
      return errorResponse(429, 'RATE_LIMITED', `Too many requests (limit "${l.name}": ${l.points} per ${l.durationMs / 1000}s); retry after ${reset}s`, requestId, undefined, {
        'retry-after': reset,
        'ratelimit-limit': String(st.limit),
        'ratelimit-remaining': '0',
        'ratelimit-reset': reset,
      })
    }
  }
  return undefined
}


