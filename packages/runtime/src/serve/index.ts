import { Cache, Database, getManifest, newInstanceId, registerPrimitive, type Component, type RuntimeContext } from '@onepipe/core'
import { Lifecycle, type LifecycleManager, type ShutdownReport } from '@onepipe/sdk'
import { serve as nodeServe, type ServerType } from '@hono/node-server'
import type { Hono } from 'hono'
import type { Server } from 'node:http'
import { createApp, instrument, type FetchHandler, type HttpState } from '../http/app.js'
import { createLogger } from '../observability/logger.js'
import { createMetrics } from '../observability/metrics.js'
import { startInstanceHeartbeat } from './instance.js'
import type { ServeOptions } from './options.js'
import { embedStreams, needsStreams } from './streams.js'

export type { ServeOptions }

/** A running OnePipe app. */
export interface App {
  /** The public Hono app (routes only; `request()` goes through ids, metrics and the drain gate too). */
  app: Hono
  /** The Fetch handler the server listens with. */
  fetch: FetchHandler
  /** Answers a request in-process exactly as the server would. */
  request(path: string, init?: RequestInit): Promise<Response>
  url: string
  port: number
  instanceId: string
  /** Stop accepting, drain, detach engines, run hooks; resolves with what ran. */
  shutdown(reason?: string): Promise<ShutdownReport>
}

function allComponents(o: ServeOptions): Component[] {
  return [...(o.rest ?? []), ...(o.channels ?? []), ...(o.flows ?? []), ...(o.signals ?? []), ...(o.projections ?? []), ...(o.workflows ?? []), ...(o.cron ?? []), ...(o.pipelines ?? []), ...(o.components ?? [])]
}

/**
 * Serves an app: HTTP on `port` with every primitive's routes, engines
 * attached, `/health`, `/ready`, `/metrics`, `/version`, `/openapi.json`,
 * and graceful shutdown on SIGTERM/SIGINT.
 *
 * With `ONEPIPE_MANIFEST_ONLY=1` (set by `onepipe manifest`) it records the
 * app in the manifest and starts nothing.
 *
 * @example
 * ```ts
 * import { serve } from '@onepipe/runtime'
 * await serve({ port: 3000, rest: [orders], workflows: [processOrder], lifecycle })
 * ```
 */
export async function serve(options: ServeOptions): Promise<App> {
  const components = allComponents(options)
  registerPrimitive({ primitive: 'app', name: 'app', infrastructure: ['none'], config: { port: options.port ?? null, components: components.map((c) => `${c.kind}:${c.name}`) } })
  if (process.env.ONEPIPE_MANIFEST_ONLY === '1') return manifestOnly()

  const instanceId = newInstanceId()
  const logger = options.logger ?? createLogger({ base: { instance: instanceId } })
  const ac = new AbortController()
  let db = options.db
  let ownDb = false
  const cache = options.cache ?? Cache.fromEnv()
  const rt: RuntimeContext = {
    instanceId,
    get db() {
      if (!db) {
        db = Database.fromEnv()
        ownDb = true
      }
      return db
    },
    cache,
    logger,
    signal: ac.signal,
  }

  const stateful = components.some((c) => c.kind !== 'rest')
  const baseLifecycle = options.lifecycle ?? Lifecycle.create().build()
  const lifecycle: LifecycleManager = baseLifecycle.with({
    checks: [
      ...(stateful || options.db ? [{ name: 'database', fn: () => rt.db.ping(), timeoutMs: 3000 }] : []),
      ...(options.cache || process.env.REDIS_URL ? [{ name: 'cache', fn: () => cache.ping(), timeoutMs: 3000 }] : []),
    ],
  })
  const metrics = createMetrics()
  const state: HttpState = { inFlight: 0, draining: false, idle: new Set() }
  const app = createApp({
    logger,
    metrics,
    lifecycle,
    auth: options.auth,
    rest: options.rest ?? [],
    openapi: options.openapi ?? { title: 'OnePipe app', version: options.version ?? process.env.ONEPIPE_VERSION ?? '0.0.0' },
    version: { name: 'onepipe-app', version: options.version ?? process.env.ONEPIPE_VERSION ?? '0.0.0', ...(process.env.ONEPIPE_COMMIT ? { commit: process.env.ONEPIPE_COMMIT } : {}) },
    accessLog: options.accessLog ?? false,
    state,
  })

  const streams = options.streams !== false && needsStreams(components) ? await embedStreams(options.streams ?? {}, logger) : undefined
  if (stateful || options.db) await rt.db.ready()
  const heartbeat = stateful ? await startInstanceHeartbeat(rt.db, instanceId, options.version ?? '0.0.0', logger) : undefined
  for (const c of components) c.routes?.(app, rt)
  const attached: Component[] = []
  try {
    for (const c of components) {
      await c.attach?.(rt)
      attached.push(c)
    }
  } catch (e) {
    for (const c of attached.reverse()) await c.detach?.().catch(() => undefined)
    await heartbeat?.stop()
    await streams?.stop()
    throw e
  }

  const fetch = instrument(app, { state, metrics, logger, accessLog: options.accessLog ?? false })
  const { server, port } = await listen(fetch, options.port ?? Number(process.env.PORT ?? 3000), options.hostname ?? process.env.HOST ?? '0.0.0.0')
  const host = options.hostname && options.hostname !== '0.0.0.0' ? options.hostname : 'localhost'
  const url = `http://${host}:${port}`
  logger.info({ url, components: components.map((c) => `${c.kind}:${c.name}`) }, 'OnePipe app listening')
  options.onListen?.({ url, port })

  let shuttingDown: Promise<ShutdownReport> | undefined
  const shutdown = (reason = 'shutdown'): Promise<ShutdownReport> => {
    shuttingDown ??= (async () => {
      const budget = lifecycle.timeoutMs
      const deadline = Date.now() + budget
      logger.info({ reason, inFlight: state.inFlight }, 'shutting down: draining requests')
      state.draining = true
      ac.abort()
      const http = server as Server
      let isClosed = false
      const closed = new Promise<void>((resolve) =>
        http.close(() => {
          isClosed = true
          resolve()
        }),
      )
      await waitIdle(state, deadline - Date.now())
      // Handlers are done, but their responses may still be flushing: let every
      // socket end by itself (responses carry Connection: close while draining),
      // dropping idle keep-alive sockets as they appear, until the deadline.
      while (!isClosed && Date.now() < deadline) {
        http.closeIdleConnections()
        await Promise.race([closed, new Promise((r) => setTimeout(r, 50))])
      }
      http.closeAllConnections()
      await closed
      for (const c of [...attached].reverse()) {
        await c.detach?.().catch((err: unknown) => logger.error({ err, component: `${c.kind}:${c.name}` }, 'detach failed'))
      }
      await heartbeat?.stop()
      await streams?.stop().catch((err: unknown) => logger.error({ err }, 'embedded streams server did not stop cleanly'))
      const closers = lifecycle.with({
        hooks: [
          // Only what serve() created itself: a database or cache the app passed in is the app's to close.
          ...(ownDb ? [{ name: 'onepipe:database', fn: () => db?.close(), priority: 1000 }] : []),
          ...(options.cache ? [] : [{ name: 'onepipe:cache', fn: () => cache.close(), priority: 1000 }]),
        ],
      })
      const report = await closers.runShutdown(Math.max(0, deadline - Date.now()))
      for (const h of report.hooks) if (!h.ok) logger.error({ hook: h.name, error: h.error }, 'shutdown hook failed')
      logger.info({ hooks: report.hooks.map((h) => h.name), timedOut: report.timedOut }, 'shutdown complete')
      return report
    })()
    return shuttingDown
  }

  if (options.handleSignals ?? true) {
    const onSignal = (sig: NodeJS.Signals) => {
      void shutdown(sig).then(
        (r) => process.exit(r.timedOut || r.hooks.some((h) => !h.ok) ? 1 : 0),
        () => process.exit(1),
      )
    }
    process.once('SIGTERM', onSignal)
    process.once('SIGINT', onSignal)
  }

  const request = async (path: string, init?: RequestInit) => fetch(new Request(new URL(path, 'http://localhost'), init))
  return { app, fetch, request, url, port, instanceId, shutdown }
}

function waitIdle(state: HttpState, ms: number): Promise<void> {
  if (state.inFlight === 0) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t)
      state.idle.delete(done)
      resolve()
    }
    const t = setTimeout(done, Math.max(0, ms))
    state.idle.add(done)
  })
}

function listen(fetch: FetchHandler, port: number, hostname: string): Promise<{ server: ServerType; port: number }> {
  return new Promise((resolve, reject) => {
    const server = nodeServe({ fetch: fetch, port, hostname }, (info) => resolve({ server, port: info.port }))
    server.once('error', reject)
  })
}

function manifestOnly(): App {
  const report: ShutdownReport = { hooks: [], timedOut: false }
  return {
    app: undefined as never,
    fetch: () => new Response(null, { status: 503 }),
    request: async () => new Response(null, { status: 503 }),
    url: '',
    port: 0,
    instanceId: 'manifest',
    shutdown: async () => report,
  }
}

export { getManifest }
