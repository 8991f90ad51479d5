import { randomUUID } from 'node:crypto'
import { errorResponse, requestIdOf, type AuthProvider, type LifecycleManager, type RestApi } from '@onepipe/sdk'
import { buildOpenApi, type OpenApiInfo } from '@onepipe/sdk'
import { OnePipeError, type Logger } from '@onepipe/core'
import { Hono, type Context } from 'hono'
import { routePath } from 'hono/route'
import type { HttpMetrics } from '../observability/metrics.js'

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
  auth: AuthProvider | undefined
  rest: RestApi[]
  openapi: OpenApiInfo
  version: { name: string; version: string; commit?: string }
  accessLog: boolean
  state: HttpState
}

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

/**
 * The client's X-Request-Id. Read from Node's already-parsed headers when
 * running on @hono/node-server: touching `c.req.raw.headers` there builds a
 * whole Fetch Headers object, the largest cost of a small request.
 */
function clientRequestId(c: Context): string | undefined {
  const incoming = (c.env as { incoming?: { headers: Record<string, string | string[] | undefined> } } | undefined)?.incoming
  if (incoming) {
    const v = incoming.headers['x-request-id']
    return typeof v === 'string' ? v : undefined
  }
  return c.req.header('x-request-id')
}

// Request ids: a random per-process prefix and a counter, unique across
// instances without a UUID per request.
const idPrefix = randomUUID().slice(0, 8)
let idCounter = 0
function nextRequestId(): string {
  return `${idPrefix}-${(++idCounter).toString(36)}`
}

/**
 * The public Hono app: request ids, drain gate, metrics, auth for OnePipe's
 * own prefixes, and the built-in endpoints. Components add their routes to it.
 */
export function createApp(d: AppDeps): Hono {
  const app = new Hono()
  const { state, metrics } = d

  app.use('*', async (c, next) => {
    const id = clientRequestId(c as Context)
    const requestId = id && id.length <= 200 ? id : nextRequestId()
    c.set('requestId' as never, requestId as never)
    if (state.draining) {
      return errorResponse(503, 'SHUTTING_DOWN', 'This instance is shutting down; retry on another instance', requestId, undefined, { connection: 'close', 'retry-after': '1' })
    }
    state.inFlight++
    const t0 = performance.now()
    try {
      await next()
    } finally {
      state.inFlight--
      // REST responses are built with the id already; others get it here.
      if (c.get('restResponse' as never) !== true) setHeader(c.res, 'x-request-id', requestId)
      if (state.draining) setHeader(c.res, 'connection', 'close')
      const ms = performance.now() - t0
      metrics.http.observe(c.req.method, routePath(c as Context), c.res.status, ms / 1000)
      if (d.accessLog) d.logger.info({ requestId, method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(ms * 10) / 10 }, 'request')
      if (state.inFlight === 0) for (const w of state.idle) w()
    }
    return undefined
  })

  if (d.auth) {
    const auth = d.auth
    const gate = async (c: Context, next: () => Promise<void>) => {
      const user = await auth(c.req.raw)
      if (!user) return errorResponse(401, 'UNAUTHORIZED', 'Authentication required; send valid credentials', requestIdOf(c), undefined, { 'www-authenticate': 'Bearer' })
      c.set('user' as never, user as never)
      await next()
      return undefined
    }
    app.use('/__onepipe/*', gate)
    app.use('/rpc/*', gate)
  }

  app.get('/health', (c) => c.json({ status: 'ok' }))
  app.get('/ready', async (c) => {
    if (state.draining) return c.json({ status: 'shutting_down', checks: [] }, 503)
    const checks = await d.lifecycle.runChecks()
    const failing = checks.filter((x) => !x.ok).map((x) => x.name)
    return c.json({ status: failing.length ? 'unavailable' : 'ok', failing, checks }, failing.length ? 503 : 200)
  })
  app.get('/metrics', async (c) => c.body((await metrics.registry.metrics()) + metrics.http.render(), 200, { 'content-type': metrics.registry.contentType }))
  app.get('/version', (c) => c.json({ ...d.version, node: process.version }))
  app.get('/openapi.json', (c) => c.json(buildOpenApi(d.openapi, d.rest.flatMap((r) => r.routeDocs()))))

  app.notFound((c) => errorResponse(404, 'ROUTE_NOT_FOUND', `No route for ${c.req.method} ${c.req.path}`, requestIdOf(c)))
  app.onError((err, c) => {
    const requestId = requestIdOf(c)
    if (err instanceof OnePipeError && err.status < 500) return errorResponse(err.status, err.code, err.message, requestId, err.details)
    d.logger.error({ err, requestId, method: c.req.method, path: c.req.path }, 'request failed')
    return errorResponse(500, 'INTERNAL', 'Internal server error', requestId)
  })
  return app
}
