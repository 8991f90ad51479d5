import { Cache, Database, getManifest, newInstanceId, registerPrimitive, type Component, type RuntimeContext } from '@onepipe/core'
import { Auth, Lifecycle, MAX_RPC_BATCH_BYTES, mountSqlConsoleRoutes, type LifecycleManager, type ShutdownReport } from '@onepipe/sdk'
import { createNodeWebSocket } from '@hono/node-ws'
import type { Hono } from 'hono'
import { setMaxListeners } from 'node:events'
import type { Server } from 'node:http'
import { createApp, instrument, type FetchHandler, type HttpState } from '../http/app.js'
import { createLogger } from '../observability/logger.js'
import { createMetrics } from '../observability/metrics.js'
import { startTracing } from '../observability/tracing.js'
import { startInstanceHeartbeat } from './instance.js'
import { listen, portOf } from './listen.js'
import { authGuard, providerGuard, type Guard } from '../http/guard.js'
import { securityHeaders } from '../http/security.js'
import type { ServeOptions } from './options.js'
import { embedStreams, needsStreams } from './streams.js'
import { wirePipelines } from './pipelines.js'
import { mountDashboard } from '../dashboard/index.js'

export type { ServeOptions }

/**
 * What a shutdown did: the hooks' report, plus what the budget cut short
 * before them (requests still running at the drain deadline, connections
 * closed under them, engines that did not detach in time). Nothing cut, no
 * hook failed, not timed out: a clean stop (exit code 0 under signals).
 */
export interface ServeShutdownReport extends ShutdownReport {
  /** One line per thing the budget cut short; empty when everything completed. */
  cut: string[]
  /** Shutdown hooks that never started because the budget ran out. */
  notRun: string[]
}

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
  /**
   * Stop accepting, end long-lived responses, drain, detach engines, run
   * hooks, all within the Lifecycle timeout; resolves with what ran and
   * what was cut.
   */
  shutdown(reason?: string): Promise<ServeShutdownReport>
}

function allComponents(o: ServeOptions): Component[] {
  return [...(o.rest ?? []), ...(o.channels ?? []), ...(o.flows ?? []), ...(o.signals ?? []), ...(o.projections ?? []), ...(o.workflows ?? []), ...(o.cron ?? []), ...(o.pipelines ?? []), ...(o.components ?? [])]
}

/**
 * Serves an app: HTTP on `port` with every primitive's routes, engines
 * attached, `/health`, `/ready`, `/metrics`, `/version`, `/openapi.json`,
 * and graceful shutdown on SIGTERM/SIGINT.
 *
 * Shutdown, within the Lifecycle timeout: `rt.signal` aborts, so every
 * long-lived response (SSE, long-poll) ends at once and its client
 * reconnects elsewhere; new requests get 503; in-flight requests finish
 * until the drain deadline (`timeout(t, { drain })`, default half of `t`),
 * after which open connections are closed; engines detach in reverse order
 * (at most half of what is left) and the embedded streams server stops;
 * then the shutdown hooks run with the rest. Anything cut is logged and
 * makes the exit code 1.
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
  // OnePipe's own routes are never open by accident: without `auth`, an app that has any gets the
  // default Auth on its database (secret from the environment), unless it declared them all public.
  const guarded = components.some((c) => c.kind !== 'rest') && options.public !== true
  const defaultAuth = guarded && options.auth === undefined
  registerPrimitive({ primitive: 'app', name: 'app', infrastructure: ['none'], config: { port: options.port ?? null, components: components.map((c) => `${c.kind}:${c.name}`), auth: options.auth === undefined ? (defaultAuth ? 'default' : 'none') : 'app' } })
  if (process.env.ONEPIPE_MANIFEST_ONLY === '1') {
    if (defaultAuth) registerPrimitive({ primitive: 'auth', name: 'onepipe', infrastructure: ['postgresql'], config: { default: true, secret: 'ONEPIPE_AUTH_SECRET or ONEPIPE_AUTH_PRIVATE_KEY' } })
    return manifestOnly()
  }
  const auth = options.auth instanceof Auth ? options.auth : defaultAuth ? Auth.create('onepipe').build() : undefined
  if (auth && !components.includes(auth)) components.unshift(auth)
  // Login throttling counts per client address: it must read that address behind the same proxies as the rate limits.
  if (auth && options.trustProxy) auth.useTrustedProxies(options.trustProxy)
  wirePipelines(components, auth)
  const pub = options.public ?? []
  const guard: Guard | undefined = auth ? authGuard(auth, pub) : typeof options.auth === 'function' ? providerGuard(options.auth, pub) : undefined

  const instanceId = newInstanceId()
  const logger = options.logger ?? createLogger({ base: { instance: instanceId } })
  const wantPort = portOf(options.port, process.env.PORT)
  const ac = new AbortController()
  // Every open SSE stream and long-poll listens on it: no listener cap warning.
  setMaxListeners(0, ac.signal)
  let db = options.db
  let ownDb = false
  const cache = options.cache ?? Cache.fromEnv()
  const rt: RuntimeContext = {
    instanceId,
    upgradeWebSocket: undefined,
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
    trustProxy: options.trustProxy,
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
    guard,
    rest: options.rest ?? [],
    openapi: options.openapi ?? { title: 'OnePipe app', version: options.version ?? process.env.ONEPIPE_VERSION ?? '0.0.0' },
    version: { name: 'onepipe-app', version: options.version ?? process.env.ONEPIPE_VERSION ?? '0.0.0', ...(process.env.ONEPIPE_COMMIT ? { commit: process.env.ONEPIPE_COMMIT } : {}) },
    accessLog: options.accessLog ?? false,
    state,
    components,
    security: { ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}), ...(options.trustProxy ? { trustProxy: options.trustProxy } : {}), ...(options.allowedOrigins ? { allowedOrigins: options.allowedOrigins } : {}) },
    cache,
  })

  // WebSocket upgrades go through the app (its guard first); no message may be larger than an RPC batch.
  const sockets = createNodeWebSocket({ app })
  sockets.wss.options.maxPayload = MAX_RPC_BATCH_BYTES
  rt.upgradeWebSocket = sockets.upgradeWebSocket
  let streams: Awaited<ReturnType<typeof embedStreams>> | undefined
  let heartbeat: Awaited<ReturnType<typeof startInstanceHeartbeat>> | undefined
  const attached: Component[] = []
  const fetch = instrument(app, { state, metrics, logger, accessLog: options.accessLog ?? false })
  const headers = await securityHeaders()
  let opened: Awaited<ReturnType<typeof listen>>
  // Only with OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT set; otherwise every span stays a no-op.
  const tracing = await startTracing({ instanceId, version: options.version ?? process.env.ONEPIPE_VERSION ?? '0.0.0' }, logger)
  try {
    streams = options.streams !== false && needsStreams(components) ? await embedStreams(options.streams ?? {}, logger) : undefined
    if (stateful || options.db) await rt.db.ready()
    if (options.cache || process.env.REDIS_URL) {
      // Not fatal (Redis may come up later, and /ready reports it), but never silent.
      void cache.ping().catch((err: unknown) => logger.warn({ err }, 'the cache (Redis) does not answer; /ready reports it until it does'))
    }
    heartbeat = stateful ? await startInstanceHeartbeat(rt.db, instanceId, options.version ?? '0.0.0', logger) : undefined
    for (const c of components) c.routes?.(app, rt)
    if (stateful) {
      mountDashboard(app, {
        components,
        db: () => rt.db,
        app: { name: options.openapi?.title ?? 'OnePipe app', version: options.version ?? process.env.ONEPIPE_VERSION ?? '0.0.0', instanceId },
        auth: guard !== undefined,
        logger,
        signal: ac.signal,
        files: options.dashboard ?? true,
      })
      if (options.sqlConsole) mountSqlConsoleRoutes(app, { db: rt.db, logger, permission: 'onepipe:admin' })
    }
    for (const c of components) {
      await c.attach?.(rt)
      attached.push(c)
    }
    opened = await listen(fetch, wantPort, options.hostname ?? process.env.HOST ?? '0.0.0.0', headers)
  } catch (e) {
    // Leave nothing behind: engines hand back their leases, so another instance takes over at once.
    for (const c of attached.reverse()) await c.detach?.().catch(() => undefined)
    await heartbeat?.stop().catch(() => undefined)
    await streams?.stop().catch(() => undefined)
    if (ownDb) await db?.close().catch(() => undefined)
    if (!options.cache) await cache.close().catch(() => undefined)
    logger.error({ err: e }, `OnePipe app failed to start: ${e instanceof Error ? e.message : String(e)}`)
    await tracing?.shutdown()
    throw e
  }
  const { server, port } = opened
  sockets.injectWebSocket(server)
  const host = options.hostname && options.hostname !== '0.0.0.0' ? options.hostname : 'localhost'
  const url = `http://${host}:${port}`
  logger.info({ url, components: components.map((c) => `${c.kind}:${c.name}`) }, 'OnePipe app listening')
  options.onListen?.({ url, port })

  let shuttingDown: Promise<ServeShutdownReport> | undefined
  // `ending`: serve() ends the process afterwards (a signal), so it also closes what the app passed in.
  const shutdown = (reason = 'shutdown', ending = false): Promise<ServeShutdownReport> => {
    shuttingDown ??= (async () => {
      const t0 = Date.now()
      const end = t0 + lifecycle.timeoutMs
      const cut: string[] = []
      logger.info({ reason, inFlight: state.inFlight, timeoutMs: lifecycle.timeoutMs, drainMs: lifecycle.drainMs }, 'shutting down: draining requests')
      state.draining = true
      // Long-lived responses end now rather than at the drain deadline: their
      // clients reconnect to another instance while ordinary requests finish.
      ac.abort()
      const left = await drain(server as Server, state, t0 + lifecycle.drainMs)
      if (left) cut.push(`${left.requests} request(s) still running and ${left.connections} connection(s) still open at the drain deadline (${lifecycle.drainMs}ms) were closed`)

      // Engines get at most half of what is left, so the hooks always keep the other half.
      const stopBy = Date.now() + Math.max(0, end - Date.now()) / 2
      for (const c of [...attached].reverse()) {
        const what = `${c.kind}:${c.name}`
        const done = await settledBy(c.detach && (() => c.detach?.()), stopBy, (err) => logger.error({ err, component: what }, 'detach failed'))
        if (!done) cut.push(`${what} was still detaching when its share of the budget ran out`)
      }
      if (!(await settledBy(heartbeat && (() => heartbeat.stop()), stopBy, (err) => logger.error({ err }, 'instance heartbeat did not stop cleanly')))) cut.push('the instance heartbeat did not stop in time')
      // After the engines: they may still read or write streams while they detach.
      if (!(await settledBy(streams && (() => streams.stop()), stopBy, (err) => logger.error({ err }, 'embedded streams server did not stop cleanly')))) cut.push('the embedded streams server did not stop in time')

      const closers = lifecycle.with({
        hooks: [
          // What serve() created itself. A database or cache the app passed in is the app's to close,
          // unless the process is ending: then it is closed after every hook of the app (closing twice
          // is harmless), so an embedded database releases its folder and its lock.
          ...(ownDb || (ending && db) ? [{ name: 'onepipe:database', fn: () => db?.close(), priority: 1000 }] : []),
          ...(!options.cache || ending ? [{ name: 'onepipe:cache', fn: () => cache.close(), priority: 1000 }] : []),
          // After the app's hooks, so their spans go out too; what cannot be exported in time is dropped, not the shutdown cut.
          ...(tracing ? [{ name: 'onepipe:telemetry', fn: () => tracing.shutdown(Math.min(5000, Math.max(0, end - Date.now() - 100))), priority: 1000 }] : []),
        ],
      })
      const hooks = await closers.runShutdown(Math.max(0, end - Date.now()))
      const ran = hooks.hooks.map((h) => h.name)
      const report: ServeShutdownReport = { ...hooks, cut, notRun: closers.hooks.map((h) => h.name).filter((n) => !ran.includes(n)) }
      for (const h of report.hooks) if (!h.ok) logger.error({ hook: h.name, error: h.error }, 'shutdown hook failed')
      if (report.cut.length > 0 || report.timedOut) logger.error({ cut: report.cut, hooksNotRun: report.notRun, timeoutMs: lifecycle.timeoutMs }, 'shutdown cut short by its budget')
      logger.info({ hooks: ran, timedOut: report.timedOut, ms: Date.now() - t0 }, 'shutdown complete')
      process.off('SIGTERM', onSignal)
      process.off('SIGINT', onSignal)
      return report
    })()
    return shuttingDown
  }

  let exiting = false
  const onSignal = (sig: NodeJS.Signals) => {
    // One stop often arrives twice (npm forwards SIGINT/SIGTERM to the app,
    // and a terminal's Ctrl-C reaches the app directly too). The first starts
    // the shutdown; a repeat must not kill it halfway: the budget bounds it.
    if (exiting) return
    exiting = true
    void shutdown(sig, true).then(
      (r) => process.exit(clean(r) ? 0 : 1),
      () => process.exit(1),
    )
  }
  if (options.handleSignals ?? true) {
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  }

  const request = async (path: string, init?: RequestInit) => fetch(new Request(new URL(path, 'http://localhost'), init))
  return { app, fetch, request, url, port, instanceId, shutdown }
}

/** Whether a shutdown completed everything it had to. */
function clean(r: ServeShutdownReport): boolean {
  return !r.timedOut && r.cut.length === 0 && r.hooks.every((h) => h.ok)
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

/**
 * Stops the server accepting and waits, until `by` (epoch ms), for in-flight
 * handlers to answer and every connection to end; then closes what is left
 * and says how much that was.
 */
async function drain(http: Server, state: HttpState, by: number): Promise<{ requests: number; connections: number } | undefined> {
  let isClosed = false
  const closed = new Promise<void>((resolve) =>
    http.close(() => {
      isClosed = true
      resolve()
    }),
  )
  await waitIdle(state, by - Date.now())
  // Handlers are done, but their responses may still be flushing: let every
  // socket end by itself (responses carry Connection: close while draining),
  // dropping idle keep-alive sockets (and those of ended SSE streams) as they
  // appear, until the deadline.
  while (!isClosed && Date.now() < by) {
    http.closeIdleConnections()
    await Promise.race([closed, sleep(50)])
  }
  let left: { requests: number; connections: number } | undefined
  if (!isClosed) {
    http.closeIdleConnections()
    const connections = await new Promise<number>((resolve) => http.getConnections((err, n) => resolve(err ? 0 : n)))
    if (connections > 0 || state.inFlight > 0) left = { requests: state.inFlight, connections }
    http.closeAllConnections()
  }
  await closed
  return left
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Waits for `p` until `by` (epoch ms): true when it settled (a rejection is
 * handed to `onError`), false when it was still running then. A late one
 * keeps running; the shutdown just stops waiting for it.
 */
async function settledBy(run: (() => Promise<unknown> | undefined) | undefined, by: number, onError: (err: unknown) => void): Promise<boolean> {
  if (!run) return true
  let t: NodeJS.Timeout | undefined
  const settled = Promise.resolve().then(run).then(
    () => true,
    (err: unknown) => {
      onError(err)
      return true
    },
  )
  const late = new Promise<boolean>((resolve) => {
    t = setTimeout(() => resolve(false), Math.max(0, by - Date.now()))
  })
  try {
    return await Promise.race([settled, late])
  } finally {
    clearTimeout(t)
  }
}

function manifestOnly(): App {
  const report: ServeShutdownReport = { hooks: [], timedOut: false, cut: [], notRun: [] }
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
