import { randomUUID } from 'node:crypto'
import { buildOpenApi, errorResponse, requestIdOf, respondError, requestInfo, type LifecycleManager, type OpenApiInfo, type RequestInfo, type RestApi } from '@onepipe/sdk'
import type { CacheLike, Component, Logger } from '@onepipe/core'
import { Hono, type Context, type MiddlewareHandler } from 'hono'
import { routePath } from 'hono/route'
import { context } from '@opentelemetry/api'
import { endServerSpan, startServerSpan } from '../observability/http-trace.js'
import type { HttpMetrics } from '../observability/metrics.js'
import { guardMiddleware, identifyCaller, type Guard } from './guard.js'
import { applySecurity, type SecurityOptions } from './security.js'
import { withOnePipeRoutes } from '../dashboard/openapi.js'

/** State the HTTP layer shares with the shutdown sequence. */
export interface HttpState {
  inFlight: number
  draining: boolean
  /** Resolves waiters when inFlight drops to zero. */
  idle: Set<() => void>
}

export interface AppDeps {
  logger: Logger
  metrics: HttpMetrics
  lifecycle: LifecycleManager
  /** Who may call `/__onepipe/*` and `/rpc/*`; none means open (an app that declared everything public). */
  guard: Guard | undefined
  rest: RestApi[]
  openapi: OpenApiInfo
  version: { name: string; version: string; commit?: string }
  accessLog: boolean
  state: HttpState
  security: SecurityOptions
  cache: CacheLike | undefined
  /** The app's components, whose OnePipe routes /openapi.json describes beside the REST routes. */
  components?: readonly Component[]
}

/** The Fetch handler serve() listens with: the app plus request bookkeeping. */
export type FetchHandler = (req: Request, env?: Record<string, unknown>) => Response | Promise<Response>

/**
 * Sets a header on a finished response in place. (`c.header()` after the
 * handler would rebuild the response around its body stream and move it off
 * @hono/node-server's fast path.)
 */
function setHeader(res: Response, name: string, value: string): void {
  try {
    res.headers.set(name, value)
  } catch {
    // Responses proxied from fetch() have immutable headers; they keep their own.
  }
}

// Request ids: a random per-process prefix and a counter, unique across
// instances without a UUID per request.
const idPrefix = randomUUID().slice(0, 8)
let idCounter = 0
function nextRequestId(): string {
  return `${idPrefix}-${(++idCounter).toString(36)}`
}

/** Query parameters whose values are credentials by their name (`?access_token=`, `?api_key=`, `?password=`…). */
const SECRET_PARAM = /token|key|secret|pass|pwd|auth|session|signature|credential|cookie|jwt/i

/**
 * The URL as the access log writes it: a credential a client puts in the query
 * string (OnePipe never asks for one there, but clients and links do) is
 * replaced by `[redacted]`, as the logger redacts headers, since log lines
 * outlive tokens and reach more people than the app does.
 */
export function loggedUrl(url: string): string {
  if (!url.includes('?')) return url
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return url.slice(0, url.indexOf('?'))
  }
  let changed = false
  for (const k of new Set(u.searchParams.keys())) {
    if (SECRET_PARAM.test(k)) {
      u.searchParams.set(k, '[redacted]')
      changed = true
    }
  }
  return changed ? u.toString() : url
}

type NodeIncoming = { headers: Record<string, string | string[] | undefined> }

function clientRequestId(req: Request, env: Record<string, unknown> | undefined): string | undefined {
  // Node's parsed headers when on @hono/node-server: req.headers there would
  // build a whole Fetch Headers object for one lookup.
  const incoming = env?.incoming as NodeIncoming | undefined
  const v = incoming ? incoming.headers['x-request-id'] : req.headers.get('x-request-id')
  return typeof v === 'string' && v.length > 0 && v.length <= 200 ? v : undefined
}

/**
 * Wraps the app's fetch with what every request needs: an id, the drain
 * gate, the in-flight count, metrics and the optional access log. Done
 * around `app.fetch` rather than as Hono middleware so a synchronous handler
 * still answers synchronously (middleware makes every response a promise).
 */
export function instrument(app: Hono, d: Pick<AppDeps, 'state' | 'metrics' | 'logger' | 'accessLog'>): FetchHandler {
  const { state, metrics } = d
  return (req, env) => {
    const requestId = clientRequestId(req, env) ?? nextRequestId()
    if (state.draining) {
      return errorResponse(503, 'SHUTTING_DOWN', 'This instance is shutting down; retry on another instance', requestId, undefined, { connection: 'close', 'retry-after': '1' })
    }
    const info: RequestInfo = { requestId, route: undefined, idInResponse: false }
    const e = env ?? {}
    e.onepipe = info
    state.inFlight++
    const t0 = performance.now()
    // Undefined unless a tracer provider is registered: the untraced path stays as it was.
    const span = startServerSpan(req, env, requestId)
    const finish = (res: Response): Response => {
      state.inFlight--
      if (!info.idInResponse) setHeader(res, 'x-request-id', requestId)
      if (state.draining) setHeader(res, 'connection', 'close')
      const ms = performance.now() - t0
      const route = info.route ?? (res.status === 404 ? '(unmatched)' : '(other)')
      metrics.http.observe(req.method, route, res.status, ms / 1000)
      if (d.accessLog) d.logger.info({ requestId, method: req.method, url: loggedUrl(req.url), status: res.status, ms: Math.round(ms * 10) / 10 }, 'request')
      if (span) endServerSpan(span, info.route, res.status)
      if (state.inFlight === 0) for (const w of state.idle) w()
      return res
    }
    const fail = (err: unknown): never => {
      state.inFlight--
      if (span) endServerSpan(span, info.route, 500, err)
      if (state.inFlight === 0) for (const w of state.idle) w()
      throw err
    }
    const run = (): Response | Promise<Response> => {
      let res: Response | Promise<Response>
      try {
        res = app.fetch(req, e)
      } catch (err) {
        return fail(err)
      }
      return res instanceof Promise ? res.then(finish, fail) : finish(res)
    }
    // The handler, and finish() with its access log line, run in the span's context.
    return span ? context.with(span.ctx, run) : run()
  }
}

/** Records the matched route pattern of a component route for metrics. */
const recordRoute: MiddlewareHandler = async (c, next) => {
  await next()
  const info = requestInfo(c)
  if (info && info.route === undefined) info.route = routePath(c)
}

/**
 * The public Hono app: auth for OnePipe's own prefixes and the built-in
 * endpoints. Components add their routes to it.
 */
export function createApp(d: AppDeps): Hono {
  const app = new Hono()
  const perCaller = applySecurity(app, d.security, d.cache, d.guard ? identifyCaller(d.guard) : undefined)
  const named = (route: string, c: Context) => {
    const info = requestInfo(c)
    if (info) info.route = route
  }

  app.use('/__onepipe/*', recordRoute)
  app.use('/rpc/*', recordRoute)
  if (d.guard) {
    const gate = guardMiddleware(d.guard, d.logger)
    app.use('/__onepipe/*', gate)
    app.use('/rpc/*', gate)
  }
  // After the guard, so limits by user or API key count the caller it found, not the address.
  if (perCaller) app.use('*', perCaller)

  app.get('/health', (c) => {
    named('/health', c)
    return c.json({ status: 'ok' })
  })
  app.get('/ready', async (c) => {
    named('/ready', c)
    if (d.state.draining) return c.json({ status: 'shutting_down', checks: [] }, 503)
    const checks = await d.lifecycle.runChecks()
    const failing = checks.filter((x) => !x.ok).map((x) => x.name)
    return c.json({ status: failing.length ? 'unavailable' : 'ok', failing, checks }, failing.length ? 503 : 200)
  })
  app.get('/metrics', async (c) => {
    named('/metrics', c)
    return c.body((await d.metrics.registry.metrics()) + d.metrics.http.render(), 200, { 'content-type': d.metrics.registry.contentType })
  })
  app.get('/version', (c) => {
    named('/version', c)
    return c.json({ ...d.version, node: process.version })
  })
  app.get('/openapi.json', (c) => {
    named('/openapi.json', c)
    return c.json(withOnePipeRoutes(buildOpenApi(d.openapi, d.rest.flatMap((r) => r.routeDocs())), d.components ?? []))
  })

  app.notFound((c) => errorResponse(404, 'ROUTE_NOT_FOUND', `No route for ${c.req.method} ${c.req.path}`, requestIdOf(c)))
  app.onError((err, c) => respondError(c, err, d.logger))
  return app
}
