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
 * The public Hono app: request ids, drain gate, metrics, auth for OnePipe's
 * own prefixes, and the built-in endpoints. Components add their routes to it.
 */
export function createApp(d: AppDeps): Hono {
  const app = new Hono()
  const { state, metrics } = d

  app.use('*', async (c, next) => {
    const id = c.req.header('x-request-id')
    const requestId = id && id.length <= 200 ? id : randomUUID()
    c.set('requestId' as never, requestId as never)
    if (state.draining) {
      return errorResponse(503, 'SHUTTING_DOWN', 'This instance is shutting down; retry on another instance', requestId, undefined, { connection: 'close', 'retry-after': '1' })
    }
    state.inFlight++
    const t0 = process.hrtime.bigint()
    try {
      await next()
    } finally {
      state.inFlight--
      if (state.draining) c.header('connection', 'close')
      c.header('x-request-id', requestId)
      const route = routePath(c as Context)
      const status = String(c.res.status)
      metrics.requests.inc({ method: c.req.method, route, status })
      const secs = Number(process.hrtime.bigint() - t0) / 1e9
      metrics.duration.observe({ method: c.req.method, route, status }, secs)
      if (d.accessLog) d.logger.info({ requestId, method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(secs * 1e4) / 10 }, 'request')
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
  app.get('/metrics', async (c) => c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType }))
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
