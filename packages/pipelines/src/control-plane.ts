import { serve as serveNode, type ServerType } from '@hono/node-server'
import { assertDatabase, ConfigError, newInstanceId, parseDuration, registerPrimitive, stderrLogger, type Component, type Database, type Duration, type Logger, type RuntimeContext } from '@onepipe/core'
import { Auth, Pipeline } from '@onepipe/sdk'
import type { Hono } from 'hono'
import { setMaxListeners } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Callers } from './api/callers.js'
import { mountOperatorRoutes } from './api/operator.js'
import { workerApi } from './api/routes.js'
import { handlerParam, parse, policyBody } from './api/schemas.js'
import { PostgresDispatch, type Dispatch } from './dispatch/postgres.js'
import { CHANGES_CHANNEL, StageEngine, type PipelineChange } from './engine/engine.js'
import { PipelineOps } from './engine/ops.js'
import { ALL_APPLICATIONS, HandlerPolicies, toSettings, type HandlerPolicy, type PolicySettings } from './engine/policies.js'
import { anyListener, dropListenerLease, holdListenerLease, markLost } from './workers/sql.js'

/** How long a replica's live-subscriber lease lasts unrenewed (ms). */
const LISTENER_LEASE_MS = 10_000

/** @internal Everything a built ControlPlane runs with (times in ms). */
interface ControlPlaneConfig {
  db: Database | undefined
  auth: Auth | undefined
  port: number | false
  hostname: string
  leaseMs: number
  heartbeatMs: number
  maxWaitMs: number
  sweepMs: number
  templates: Pipeline[]
  /** 'postgres' (default) or 'rabbitmq' (default when RABBITMQ_URL is set). */
  dispatch: 'postgres' | 'rabbitmq'
  rabbitmqUrl: string | undefined
  /** Policies for every application, written at start (see {@link ControlPlaneBuilder.handlerPolicy}). */
  policies: Map<string, PolicySettings>
}

/**
 * The pipelines control plane: the stage engine, PostgreSQL dispatch with
 * real long-polls, the watchdog, and the external API workers speak
 * (docs/protocol/workers.md) on its own port (default
 * `ONEPIPE_WORKERS_PORT` or 8081). Any number of replicas share one
 * database. `serve({ pipelines: [templates…] })` makes one for the app;
 * build one yourself for a control plane of its own.
 *
 * @example
 * ```ts
 * const cp = ControlPlane.create().db(db).auth(auth).port(8081).templates([blueprint]).build()
 * await cp.start()          // or serve({ pipelines: [cp] })
 * console.log(cp.url)       // http://127.0.0.1:8081
 * ```
 */
export class ControlPlane implements Component {
  readonly kind = 'pipeline-control-plane'
  readonly name = 'pipelines'
  readonly #c: ControlPlaneConfig
  #db: Database | undefined
  #auth: Auth | undefined
  #log: Logger = stderrLogger
  #engine: StageEngine | undefined
  #ops: PipelineOps | undefined
  #policies: HandlerPolicies | undefined
  #dispatch: Dispatch | undefined
  #server: ServerType | undefined
  #api: Hono | undefined
  #sweep: NodeJS.Timeout | undefined
  /** One connection for claims and the watchdog, whatever the number of parked pulls. */
  #lane: Database | undefined
  #sweeping: Promise<unknown> | undefined
  #ac = newSignal()
  #url = ''
  #listeners = new Set<(c: PipelineChange) => void>()
  #listening: Promise<() => Promise<void>> | undefined
  #instanceId = ''
  #ownAuth = false

  /** @internal Use {@link ControlPlane.create}. */
  constructor(c: ControlPlaneConfig) {
    this.#c = c
    this.#db = c.db
    this.#auth = c.auth
  }

  /** Starts building a control plane. @example `ControlPlane.create().db(db).build()` */
  static create(): ControlPlaneBuilder {
    return new ControlPlaneBuilder()
  }

  /** Base URL of the external API once started ('' when it is mounted on the app only). */
  get url(): string {
    return this.#url
  }

  /** The stage engine (claims, acks, the watchdog pass). */
  get engine(): StageEngine {
    if (!this.#engine) throw new ConfigError('PIPELINES_NOT_STARTED', 'The control plane is not started; call start() or pass it to serve()')
    return this.#engine
  }

  /** Reads and operator actions: get, list, cancel, rerun, skip, resume, append, logs. */
  get ops(): PipelineOps {
    if (!this.#ops) throw new ConfigError('PIPELINES_NOT_STARTED', 'The control plane is not started; call start() or pass it to serve()')
    return this.#ops
  }

  /** The external API as a Hono app (to mount it, or to call it in-process with `api.request()`). */
  get api(): Hono {
    if (!this.#api) throw new ConfigError('PIPELINES_NOT_STARTED', 'The control plane is not started; call start() or pass it to serve()')
    return this.#api
  }

  /** Per-handler policies: set, read, and the cache every claim consults. */
  get policies(): HandlerPolicies {
    if (!this.#policies) throw new ConfigError('PIPELINES_NOT_STARTED', 'The control plane is not started; call start() or pass it to serve()')
    return this.#policies
  }

  /** Pulls parked in this process. */
  get parked(): number {
    return this.#dispatch?.parked ?? 0
  }

  /** @internal serve() hands over its Auth when the control plane was built without one. */
  useAuth(auth: Auth): void {
    this.#auth ??= auth
  }

  /** The templates this control plane lets applications and operators start by name. */
  get templateList(): readonly Pipeline[] {
    return this.#c.templates
  }

  /**
   * Calls `fn` with every pipeline and stage change made by any replica
   * (live updates). Returns a function that stops.
   *
   * @example
   * ```ts
   * const stop = cp.onChange((c) => console.log(c.pipelineId, c.stage, c.stageStatus))
   * ```
   */
  onChange(fn: (c: PipelineChange) => void): () => void {
    this.#listeners.add(fn)
    if (this.#listeners.size === 1) this.#subscribed()
    return () => {
      if (this.#listeners.delete(fn) && this.#listeners.size === 0 && this.#engine) {
        const lane = this.#lane
        if (lane) void this.#engine.serially(() => dropListenerLease(lane, this.#instanceId)).catch((err: unknown) => this.#log.warn({ err }, 'pipelines: dropping the live-subscriber lease failed; it runs out by itself'))
      }
    }
  }

  /**
   * A first live subscriber in this process: listen for changes (from the
   * first one only: every listening connection pays for every
   * notification), publish from here at once, and tell the other replicas
   * through the lease they read at each watchdog pass (within a second).
   */
  #subscribed(): void {
    const engine = this.#engine
    const lane = this.#lane
    const db = this.#db
    if (!engine || !lane || !db) return
    engine.publishing = true
    this.#listening ??= db.listen(CHANGES_CHANNEL, (p) => this.#changed(p))
    this.#listening.catch((err: unknown) => {
      this.#listening = undefined
      this.#log.error({ err }, 'pipelines: listening for live changes failed')
    })
    void engine.serially(() => holdListenerLease(lane, this.#instanceId, LISTENER_LEASE_MS)).catch((err: unknown) => this.#log.warn({ err }, 'pipelines: taking the live-subscriber lease failed; the next watchdog pass retries'))
  }

  /** Starts on its own (outside serve()): the engine, dispatch, watchdog and the API's port. */
  async start(): Promise<void> {
    await this.attach({ instanceId: newInstanceId(), db: this.#requireDb(), cache: undefined as never, logger: this.#log, signal: new AbortController().signal })
  }

  /** Stops: parked pulls answer 204, the port closes, the watchdog ends. */
  async stop(): Promise<void> {
    await this.detach()
  }

  /** @internal */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#db ??= rt.db
    this.#ac = newSignal()
    this.#log = rt.logger.child({ component: 'pipelines' })
    const db = this.#requireDb()
    if (!this.#auth) {
      this.#auth = Auth.create('pipelines').db(db).build()
      this.#ownAuth = true
    }
    const auth = this.#auth
    await db.ready()
    if (this.#ownAuth) await auth.attach(rt)
    rt.signal.addEventListener('abort', () => this.#ac.abort(), { once: true })
    for (const t of this.#c.templates) await t.attach(rt)
    this.#lane = db.dedicated('pipelines-dispatch')
    const policies = new HandlerPolicies(db, { log: this.#log })
    for (const [handler, settings] of this.#c.policies) await policies.set(ALL_APPLICATIONS, handler, settings)
    await policies.refresh()
    this.#policies = policies
    this.#engine = new StageEngine(db, { leaseMs: this.#c.leaseMs, log: this.#log, lane: this.#lane, policies })
    this.#ops = new PipelineOps(db, this.#engine)
    this.#dispatch = await this.#makeDispatch(db, this.#engine)
    await this.#dispatch.start()
    this.#instanceId = rt.instanceId
    if (this.#listeners.size > 0) this.#subscribed()
    if (this.#c.dispatch === 'rabbitmq') this.#engine.publishing = true
    this.#api = workerApi({
      db,
      engine: this.#engine,
      ops: this.#ops,
      dispatch: this.#dispatch,
      policies,
      callers: new Callers(() => auth, db),
      templates: new Map(this.#c.templates.map((t) => [t.name, t])),
      log: this.#log,
      leaseMs: this.#c.leaseMs,
      heartbeatMs: this.#c.heartbeatMs,
      maxWaitMs: this.#c.maxWaitMs,
      signal: this.#ac.signal,
    }) as unknown as Hono
    this.#sweep = setInterval(() => this.#runSweep(), this.#c.sweepMs)
    this.#sweep.unref()
    if (this.#c.port !== false) await this.#listen(this.#c.port)
  }

  async #makeDispatch(db: Database, engine: StageEngine): Promise<Dispatch> {
    if (this.#c.dispatch === 'postgres') return new PostgresDispatch(db, engine, { log: this.#log })
    if (!this.#c.rabbitmqUrl) throw new ConfigError('PIPELINES_NO_RABBITMQ_URL', 'RabbitMQ dispatch needs RABBITMQ_URL (or .rabbitmq(url))')
    // Loaded only when asked for: an app on PostgreSQL dispatch never loads the AMQP client.
    const { RabbitDispatch } = await import('./dispatch/rabbitmq.js')
    return new RabbitDispatch(db, engine, { log: this.#log, url: this.#c.rabbitmqUrl })
  }

  async #listen(port: number): Promise<void> {
    const api = this.api
    await new Promise<void>((resolve, reject) => {
      const server = serveNode({ fetch: api.fetch, port, hostname: this.#c.hostname }, (info: AddressInfo) => {
        this.#url = `http://${this.#c.hostname.includes(':') ? `[${this.#c.hostname}]` : this.#c.hostname}:${info.port}`
        resolve()
      })
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'EADDRINUSE' ? new ConfigError('PORT_IN_USE', `The worker API port ${port} is in use: set ONEPIPE_WORKERS_PORT or .port() to a free one`) : e),
      )
      this.#server = server
    })
    this.#log.info({ url: this.#url }, 'pipelines: worker API listening')
  }

  #runSweep(): void {
    if (this.#sweeping || !this.#engine) return
    const engine = this.#engine
    this.#sweeping = (async () => {
      await engine.sweep()
      await engine.serially((lane) => markLost(lane, 3 * this.#c.heartbeatMs))
      const mine = this.#listeners.size > 0
      if (mine) await engine.serially((lane) => holdListenerLease(lane, this.#instanceId, LISTENER_LEASE_MS))
      // Under RabbitMQ the updates fanout and the results queue are subscribers too: always publish.
      engine.publishing = mine || this.#c.dispatch === 'rabbitmq' || (await engine.serially((lane) => anyListener(lane)))
      // Policies set through another replica are enforced here from this pass on.
      const policies = this.#policies
      if (policies) await engine.serially((lane) => policies.refresh(lane))
    })()
      .catch((err: unknown) => this.#log.warn({ err }, 'pipelines: watchdog pass failed; the next one retries'))
      .finally(() => (this.#sweeping = undefined))
  }

  /** @internal serve() mounts the operators' routes (`/__onepipe/pipelines/*`) on the app. */
  routes(app: unknown, rt: RuntimeContext): void {
    mountOperatorRoutes(app as Hono, { db: this.#requireDbOr(rt), ops: () => this.ops, policies: () => this.policies, onChange: (fn) => this.onChange(fn), log: rt.logger.child({ component: 'pipelines' }), signal: rt.signal, templates: () => new Map(this.#c.templates.map((t) => [t.name, t])) })
  }

  #requireDbOr(rt: RuntimeContext): Database {
    this.#db ??= rt.db
    return this.#db
  }

  /** Runs one watchdog pass now (tests, or an operator's "check now"). */
  async sweepNow(): Promise<{ expired: number; promoted: number }> {
    return this.engine.sweep()
  }

  #changed(payload: string): void {
    let c: PipelineChange
    try {
      c = JSON.parse(payload) as PipelineChange
    } catch {
      return
    }
    for (const fn of this.#listeners) {
      try {
        fn(c)
      } catch (err) {
        this.#log.warn({ err }, 'pipelines: a change listener threw')
      }
    }
  }

  /** @internal */
  async detach(): Promise<void> {
    this.#ac.abort()
    clearInterval(this.#sweep)
    this.#sweep = undefined
    await this.#sweeping
    this.#engine?.close()
    this.#policies?.close()
    await this.#dispatch?.stop()
    const listening = this.#listening
    this.#listening = undefined
    await (await listening?.catch(() => undefined))?.()
    const server = this.#server
    this.#server = undefined
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Parked pulls already answered; idle keep-alive sockets must not hold the close.
        ;(server as { closeIdleConnections?: () => void }).closeIdleConnections?.()
      })
    }
    if (this.#ownAuth) await this.#auth?.detach()
    if (this.#lane && this.#lane !== this.#db) await this.#lane.close()
    this.#lane = undefined
  }

  #requireDb(): Database {
    if (!this.#db) throw new ConfigError('PIPELINES_NO_DATABASE', 'The control plane has no database: give it .db(db) or pass it to serve()')
    return this.#db
  }
}

/**
 * Fluent configuration for a {@link ControlPlane}.
 *
 * @example
 * ```ts
 * ControlPlane.create().db(db).lease('30s').heartbeat('10s').maxWait('30s').port(0).build()
 * ```
 */
export class ControlPlaneBuilder {
  #askedRabbitmq = false
  #c: ControlPlaneConfig = {
    db: undefined,
    auth: undefined,
    port: portFromEnv(),
    hostname: process.env.ONEPIPE_WORKERS_HOST ?? '127.0.0.1',
    leaseMs: 30_000,
    heartbeatMs: 10_000,
    maxWaitMs: 30_000,
    sweepMs: 1000,
    templates: [],
    dispatch: process.env.RABBITMQ_URL ? 'rabbitmq' : 'postgres',
    rabbitmqUrl: process.env.RABBITMQ_URL || undefined,
    policies: new Map(),
  }

  /**
   * Dispatch through RabbitMQ at `url`, or at `RABBITMQ_URL` when no url is
   * given (the default dispatch too when `RABBITMQ_URL` is set); workers still
   * speak HTTP only. Asking for it here also records RabbitMQ in the app's
   * manifest, so `onepipe deploy` provisions it.
   *
   * @example `.rabbitmq()` or `.rabbitmq('amqp://guest:guest@127.0.0.1:5672')`
   */
  rabbitmq(url?: string): this {
    this.#c.dispatch = 'rabbitmq'
    this.#c.rabbitmqUrl = url ?? (process.env.RABBITMQ_URL || undefined)
    this.#askedRabbitmq = true
    return this
  }

  /** Dispatch through PostgreSQL LISTEN/NOTIFY even when `RABBITMQ_URL` is set. @example `.postgresDispatch()` */
  postgresDispatch(): this {
    this.#c.dispatch = 'postgres'
    return this
  }

  /** The database of pipelines (default: the app's under serve()). @example `.db(db)` */
  db(db: Database): this {
    this.#c.db = assertDatabase(db, 'ControlPlane')
    return this
  }

  /** The Auth whose application keys call the API (default: serve()'s, else one on the database). @example `.auth(auth)` */
  auth(auth: Auth): this {
    this.#c.auth = auth
    return this
  }

  /** Port of the external API (0: a free one; false: none, mount `cp.api` yourself). Default `ONEPIPE_WORKERS_PORT` or 8081. @example `.port(0)` */
  port(port: number | false): this {
    if (port !== false && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new ConfigError('INVALID_PORT', `The worker API port must be 0-65535 or false, got ${port}`)
    this.#c.port = port
    return this
  }

  /** Interface of the API's port (default `ONEPIPE_WORKERS_HOST` or 127.0.0.1). @example `.hostname('0.0.0.0')` */
  hostname(h: string): this {
    this.#c.hostname = h
    return this
  }

  /** How long a pulled job is leased before it must be renewed (default 30 s). @example `.lease('30s')` */
  lease(d: Duration): this {
    this.#c.leaseMs = positive(d, 'lease')
    return this
  }

  /** How often workers send heartbeats (default 10 s); 3 missed make a worker lost. @example `.heartbeat('10s')` */
  heartbeat(d: Duration): this {
    this.#c.heartbeatMs = positive(d, 'heartbeat')
    return this
  }

  /** The longest a pull may wait (default 30 s). @example `.maxWait('20s')` */
  maxWait(d: Duration): this {
    this.#c.maxWaitMs = positive(d, 'maxWait')
    return this
  }

  /** How often the watchdog looks for expired leases, timeouts and due retries (default 1 s). @example `.sweepEvery('500ms')` */
  sweepEvery(d: Duration): this {
    this.#c.sweepMs = positive(d, 'sweepEvery')
    return this
  }

  /** Templates workers' applications may start by name (`POST /pipelines { template }`). @example `.templates([blueprint])` */
  templates(list: Pipeline[]): this {
    for (const t of list) if (!(t instanceof Pipeline)) throw new ConfigError('PIPELINES_BAD_TEMPLATE', 'templates() takes built Pipelines (Pipeline.create(name)…build())')
    this.#c.templates = [...list]
    return this
  }

  /**
   * A policy of `handler` for every application (enforced across replicas
   * at claim time; see {@link HandlerPolicy}), written at start as the row
   * of application `'*'`. An application's own policy (`PUT
   * /handlers/{name}/policy`) takes precedence over it; each application
   * has its own running count, bucket and breaker. Starting replicas with
   * different policies for one handler leaves the last one started.
   *
   * @example
   * ```ts
   * .handlerPolicy('vision.analyze', { concurrency: 4, rate: { perSecond: 10, burst: 10 }, breaker: { failureRate: 0.5, minCalls: 20, window: '1m', cooldown: '30s' } })
   * ```
   * @throws ConfigError `PIPELINES_BAD_POLICY` naming the field of a bad handler name or policy
   */
  handlerPolicy(handler: string, policy: HandlerPolicy): this {
    try {
      this.#c.policies.set(handlerParam(handler), toSettings(parse(policyBody, policy, `policy of "${handler}"`)))
    } catch (e) {
      const issues = (e as { issues?: { path: string; message: string }[] }).issues ?? []
      throw new ConfigError('PIPELINES_BAD_POLICY', `Bad handler policy for "${handler}": ${issues.map((i) => `${i.path || '(handler name)'} ${i.message}`).join('; ') || String(e)}`)
    }
    return this
  }

  /** Builds the control plane and records it in the manifest (RabbitMQ among its needs when `.rabbitmq()` asked for it). */
  build(): ControlPlane {
    registerPrimitive({
      primitive: 'control-plane',
      name: 'pipelines',
      infrastructure: this.#askedRabbitmq ? ['postgresql', 'rabbitmq'] : ['postgresql'],
      config: { dispatch: this.#askedRabbitmq ? 'rabbitmq' : 'postgres (or rabbitmq when RABBITMQ_URL is set at start)', workerPort: this.#c.port, templates: this.#c.templates.map((t) => t.name) },
    })
    return new ControlPlane({ ...this.#c, policies: new Map(this.#c.policies) })
  }
}

/** The shutdown signal every parked pull listens on: no listener cap warning with hundreds of them. */
function newSignal(): AbortController {
  const ac = new AbortController()
  setMaxListeners(0, ac.signal)
  return ac
}

function positive(d: Duration, what: string): number {
  const ms = parseDuration(d)
  if (ms < 1) throw new ConfigError('PIPELINES_BAD_OPTION', `${what} must be at least 1 ms`)
  return ms
}

function portFromEnv(): number {
  const raw = process.env.ONEPIPE_WORKERS_PORT
  if (raw === undefined || raw === '') return 8081
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError('INVALID_PORT', `ONEPIPE_WORKERS_PORT must be a port number 0-65535, got "${raw}"`)
  return n
}
