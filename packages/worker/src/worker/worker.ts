import { hostname } from 'node:os'
import { ConfigError, OnePipeError, TransportError } from '@onepipe/core'
import { errorBody, WorkerHttpError } from '../errors/index.js'
import { ControlPlaneClient, httpError, type CallOptions, type HttpAnswer } from '../http/client.js'
import { parseBootstrap, parseJobs, type BootstrapAnswer, type WireJob } from '../http/protocol.js'
import { AckBatcher } from './acks.js'
import { backoffMs, sleep } from './backoff.js'
import { WorkerBuilder } from './builder.js'
import { RunningJob, type JobHandler, type JobHooks } from './job.js'
import type { WorkerLogger } from './logger.js'
import { StatsSampler } from './stats.js'

/** Everything a {@link Worker} is built with; see {@link WorkerBuilder}. */
export interface WorkerOptions {
  name: string
  url: string
  apiKey: string
  handlers: Map<string, JobHandler>
  concurrency: number
  handleSignals: boolean
  stopTimeoutMs: number
  logger: WorkerLogger
  version: string | undefined
  waitMs: number | undefined
}

/**
 * Where a worker is in its life. `stopped` is final: build another worker to start again.
 *
 * @example
 * ```ts
 * if (worker.state === 'running') await worker.stop()
 * ```
 */
export type WorkerState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped'

/**
 * Options of {@link Worker.stop}.
 *
 * @example
 * ```ts
 * await worker.stop({ timeoutMs: 10_000, reason: 'deploy' })
 * ```
 */
export interface StopOptions {
  /** How long running jobs may still finish, in ms (default: `.stopTimeout()`, 30 000). 0 hands them back at once. */
  timeoutMs?: number
  /** Why, as the control plane shows it. */
  reason?: string
}

type Listener = { error: (err: OnePipeError) => void; stopped: () => void }

/**
 * A pipeline worker: pulls jobs for its handlers from the control plane
 * (docs/protocol/workers.md), runs up to `concurrency` at once, renews their
 * leases, and acknowledges each result. It talks only HTTP to the control
 * plane, never to the database.
 *
 * @example
 * ```ts
 * import { Worker, TerminalError } from '@onepipe/worker'
 * const worker = Worker.create('vision')
 *   .handle('vision.analyze', async (job, ctx) => {
 *     if (!job.input) throw new TerminalError('NO_INPUT', 'nothing to analyze')
 *     ctx.log.info('analyzing')
 *     return { pages: 12 }
 *   })
 *   .concurrency(8)
 *   .handleSignals()
 *   .build()
 * await worker.start()
 * ```
 */
export class Worker {
  readonly #o: WorkerOptions
  readonly #client: ControlPlaneClient
  readonly #acks: AckBatcher
  readonly #stats = new StatsSampler()
  readonly #inFlight = new Map<string, RunningJob>()
  readonly #pending = new Set<Promise<unknown>>()
  readonly #life = new AbortController()
  readonly #listeners: { [K in keyof Listener]: Listener[K][] } = { error: [], stopped: [] }
  readonly #hooks: JobHooks
  #state: WorkerState = 'idle'
  #session: BootstrapAnswer | undefined
  #generation = 0
  #reauthing: Promise<void> | undefined
  #startup: Promise<void> | undefined
  #loop: Promise<void> | undefined
  #stopping: Promise<void> | undefined
  #pullAbort: AbortController | undefined
  #drain = false
  #heartbeatOn = false
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined
  #wakers: (() => void)[] = []
  #failure: OnePipeError | undefined
  #onSignal: ((signal: NodeJS.Signals) => void) | undefined

  /** @internal Use `Worker.create(name)…build()`. */
  constructor(o: WorkerOptions) {
    this.#o = o
    this.#client = new ControlPlaneClient(o.url, o.apiKey)
    this.#acks = new AckBatcher((path, body, c) => this.#post(path, body, c), o.logger)
    this.#hooks = {
      renew: (id) => this.#track(this.#renew(id)),
      flushLogs: (wire, entries) => void this.#track(this.#sendLogs(wire, entries)),
    }
  }

  /**
   * Starts configuring a worker.
   *
   * @throws ConfigError `WORKER_BAD_NAME` for a name that is not 1-128 characters
   * @example
   * ```ts
   * const w = Worker.create('vision').handle('vision.analyze', analyze).build()
   * ```
   */
  static create(name: string): WorkerBuilder {
    return new WorkerBuilder(name)
  }

  /** The worker's name. */
  get name(): string {
    return this.#o.name
  }

  /** Where it is in its life: idle, starting, running, stopping, stopped. */
  get state(): WorkerState {
    return this.#state
  }

  /** The id the control plane gave it at bootstrap (undefined before). */
  get workerId(): string | undefined {
    return this.#session?.workerId
  }

  /** How many jobs run now. */
  get inFlight(): number {
    return this.#inFlight.size
  }

  /** Whether the control plane asked it to stop pulling (heartbeat `drain: true`). */
  get draining(): boolean {
    return this.#drain
  }

  /** The error that stopped the worker on its own (refused credentials), if one did. */
  get failure(): OnePipeError | undefined {
    return this.#failure
  }

  /**
   * Listens for `error` (the worker stops on its own: refused API key or
   * access; without a listener it is written to the worker's logger) or
   * `stopped` (stop() finished).
   *
   * @example
   * ```ts
   * worker.on('error', (e) => { console.error(e.code, e.message); process.exitCode = 1 })
   * ```
   */
  on<K extends keyof Listener>(event: K, listener: Listener[K]): this {
    this.#listeners[event].push(listener)
    return this
  }

  /**
   * Registers with the control plane (`POST /workers/bootstrap`), then pulls
   * and runs jobs in the background until {@link stop}. While the control
   * plane cannot be reached it keeps trying (backing off up to 5 s, with a
   * warning each time); `stop()` ends that too.
   *
   * @throws WorkerAuthError (`WORKER_UNAUTHORIZED` 401, `WORKER_FORBIDDEN` 403) when the API key is refused;
   *   WorkerHttpError for another refusal (400: a bad handler list); ConfigError `WORKER_ALREADY_STARTED` on a second call
   * @example
   * ```ts
   * await worker.start()
   * ```
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new ConfigError('WORKER_ALREADY_STARTED', `Worker "${this.#o.name}" was already started; build another one to start again`)
    this.#state = 'starting'
    this.#startup = this.#connect()
    try {
      await this.#startup
    } catch (e) {
      this.#state = 'stopped'
      throw e
    }
    if (this.#state !== 'starting') return // stop() came during the bootstrap
    this.#state = 'running'
    this.#stats.start()
    this.#heartbeatOn = true
    this.#scheduleHeartbeat()
    this.#installSignals()
    this.#loop = this.#pullLoop().catch((e: unknown) => this.#fatal(e instanceof OnePipeError ? e : new WorkerHttpError('pull loop', 500, { error: { message: String(e) } })))
    this.#o.logger.info('started', { workerId: this.workerId, handlers: [...this.#o.handlers.keys()], concurrency: this.#o.concurrency, url: this.#client.baseUrl })
  }

  /**
   * Stops gracefully: no more pulls; running jobs get up to `timeoutMs` to
   * finish and be acknowledged; those still running then have `ctx.signal`
   * aborted and are acknowledged as failed and retryable ("worker shutting
   * down"), so that their stages come back at once instead of after their
   * leases; finally `POST /workers/shutdown`. Calling it again returns the
   * same promise. Never rejects: problems are logged.
   *
   * @example
   * ```ts
   * process.on('SIGTERM', () => void worker.stop({ timeoutMs: 30_000 }))
   * ```
   */
  stop(o: StopOptions = {}): Promise<void> {
    this.#stopping ??= this.#stop(o.timeoutMs ?? this.#o.stopTimeoutMs, o.reason ?? 'stopped')
    return this.#stopping
  }

  async #stop(timeoutMs: number, reason: string): Promise<void> {
    if (this.#state === 'idle' || this.#state === 'stopped') {
      this.#state = 'stopped'
      this.#emitStopped()
      return
    }
    this.#state = 'stopping'
    this.#removeSignals()
    this.#life.abort()
    this.#pullAbort?.abort()
    this.#wake()
    await this.#startup?.catch(() => undefined) // start() reports its own failure
    await this.#loop
    const end = Date.now() + timeoutMs
    while (this.#inFlight.size > 0 && Date.now() < end) await this.#waitWake(end - Date.now())
    if (this.#inFlight.size > 0) {
      this.#o.logger.warn(`stop: ${this.#inFlight.size} job(s) still running after ${timeoutMs} ms; aborting them and handing them back`, { executionIds: [...this.#inFlight.keys()] })
      for (const job of this.#inFlight.values()) {
        const ack = job.abandon()
        if (ack) this.#acks.push(ack)
      }
      this.#inFlight.clear()
    }
    await this.#acks.drain()
    this.#heartbeatOn = false
    clearTimeout(this.#heartbeatTimer)
    while (this.#pending.size > 0) await Promise.all([...this.#pending])
    this.#stats.stop()
    if (this.#session) {
      const body = JSON.stringify({ workerId: this.#session.workerId, reason })
      try {
        const r = await this.#client.call('POST', '/workers/shutdown', body)
        if (r.status >= 300) this.#o.logger.warn('the control plane refused the shutdown call; it will show the worker as lost', { status: r.status, error: errorBody(r.body) })
      } catch (e) {
        this.#o.logger.warn('shutdown call failed; the control plane will show the worker as lost', { error: (e as Error).message })
      }
      this.#client.setSession(undefined)
    }
    this.#state = 'stopped'
    this.#o.logger.info('stopped', { reason })
    this.#emitStopped()
  }

  async #connect(): Promise<void> {
    for (let failures = 1; ; failures++) {
      try {
        await this.#bootstrap()
        return
      } catch (e) {
        if (this.#life.signal.aborted) return
        if (!(e instanceof OnePipeError) || !e.retryable) throw e
        this.#o.logger.warn(`control plane not reachable at ${this.#client.baseUrl}; trying again`, { error: e.message, failures })
        await sleep(backoffMs(failures), this.#life.signal)
        if (this.#life.signal.aborted) return
      }
    }
  }

  /** @throws WorkerAuthError, WorkerHttpError, TransportError */
  async #bootstrap(): Promise<void> {
    const body = JSON.stringify({
      name: this.#o.name,
      handlers: [...this.#o.handlers.keys()],
      concurrency: this.#o.concurrency,
      host: hostname(),
      ...(this.#o.version === undefined ? {} : { version: this.#o.version }),
    })
    const r = await this.#client.call('POST', '/workers/bootstrap', body, { useKey: true, signal: this.#life.signal })
    if (r.status === 404) {
      // The usual cause: the app's own port instead of the control plane's worker API.
      throw new WorkerHttpError('POST /workers/bootstrap', 404, {
        error: { code: 'WORKER_API_NOT_FOUND', message: `${this.#client.baseUrl} is not a worker API (no /workers/bootstrap there): point .url() or ONEPIPE_WORKERS_URL at the control plane's port (ONEPIPE_WORKERS_PORT, default 8081), not the app's` },
      })
    }
    if (r.status !== 201 && r.status !== 200) throw httpError('POST /workers/bootstrap', r)
    const s = parseBootstrap(r.body)
    this.#session = s
    this.#generation++
    this.#client.setSession(s.sessionToken)
  }

  /**
   * Every call after bootstrap goes through here: a 401 means the session
   * ended (the control plane restarted, or saw the worker as lost), so it
   * bootstraps again with the API key, once for all calls that saw it, and
   * repeats the call. A key that is refused too stops the worker.
   */
  async #post(path: string, body: () => string, o: CallOptions = {}): Promise<HttpAnswer> {
    const generation = this.#generation
    const r = await this.#client.call('POST', path, body(), o)
    if (r.status !== 401 || this.#state === 'stopped' || this.#failure) return r
    if (generation === this.#generation) {
      this.#reauthing ??= this.#bootstrap().finally(() => (this.#reauthing = undefined))
      try {
        await this.#reauthing
        this.#o.logger.warn('the session ended; bootstrapped again', { workerId: this.workerId })
      } catch (e) {
        if (e instanceof OnePipeError && !e.retryable) this.#fatal(e)
        return r
      }
    }
    return this.#client.call('POST', path, body(), o)
  }

  #waitMs(): number {
    const max = this.#session?.maxWaitMs ?? 30_000
    return Math.min(this.#o.waitMs ?? max, max)
  }

  async #pullLoop(): Promise<void> {
    const handlers = [...this.#o.handlers.keys()]
    let failures = 0
    while (this.#state === 'running') {
      const free = this.#o.concurrency - this.#inFlight.size
      if (free <= 0 || this.#drain) {
        await this.#nextWake()
        continue
      }
      const abort = new AbortController()
      this.#pullAbort = abort
      const waitMs = this.#waitMs()
      const began = Date.now()
      let r: HttpAnswer
      try {
        r = await this.#post('/jobs/pull', () => JSON.stringify({ workerId: this.workerId, handlers, max: Math.min(free, 100), waitMs }), { signal: abort.signal, timeoutMs: waitMs + 15_000 })
      } catch (e) {
        if (abort.signal.aborted) continue
        failures++
        this.#o.logger.warn('pull failed; trying again', { error: (e as Error).message, failures })
        await sleep(backoffMs(failures), this.#life.signal)
        continue
      } finally {
        this.#pullAbort = undefined
      }
      if (r.status === 200) {
        let jobs: WireJob[]
        try {
          jobs = parseJobs(r.body)
        } catch (e) {
          failures++
          this.#o.logger.error((e as Error).message)
          await sleep(backoffMs(failures), this.#life.signal)
          continue
        }
        failures = 0
        for (const j of jobs) this.#run(j)
        continue
      }
      if (r.status === 204) {
        // An answer long before waitMs is a control plane going away (or a proxy): pull again soon, not in a hot loop.
        if (Date.now() - began < waitMs / 2) await sleep(backoffMs(++failures), this.#life.signal)
        else failures = 0
        continue
      }
      const err = httpError('POST /jobs/pull', r)
      if (r.status === 401 || r.status === 403) return this.#fatal(err)
      failures++
      if (err.retryable) this.#o.logger.warn(err.message, { status: r.status, failures })
      else this.#o.logger.error(err.message, { status: r.status, failures })
      await sleep(r.retryAfterMs ?? backoffMs(failures), this.#life.signal)
    }
  }

  #run(wire: WireJob): void {
    const job = new RunningJob(wire, this.#session?.leaseMs ?? 30_000, this.#hooks)
    const id = wire.executionId
    this.#inFlight.set(id, job)
    void job.run(this.#o.handlers.get(wire.handler)).then(
      (ack) => {
        if (ack) this.#acks.push(ack)
      },
      (e: unknown) => this.#o.logger.error('job failed outside its handler; its stage comes back when the lease runs out', { executionId: id, error: String(e) }),
    ).finally(() => {
      if (this.#inFlight.get(id) === job) this.#inFlight.delete(id)
      this.#wake()
    })
  }

  async #renew(executionId: string): Promise<'ok' | 'stale' | 'cancelled' | 'error'> {
    let r: HttpAnswer
    try {
      r = await this.#post('/jobs/lease/renew', () => JSON.stringify({ executionId }))
    } catch (e) {
      this.#o.logger.warn('lease renewal failed; trying again at the next tick', { executionId, error: (e as Error).message })
      return 'error'
    }
    if (r.status === 200) return 'ok'
    if (r.status === 409 || r.status === 404) {
      const code = errorBody(r.body)?.code
      this.#o.logger.debug('lease renewal refused: the attempt is over', { executionId, status: r.status, code })
      return code === 'JOB_CANCELLED' ? 'cancelled' : 'stale'
    }
    this.#o.logger.warn('lease renewal refused; trying again at the next tick', { executionId, status: r.status, error: errorBody(r.body) })
    return 'error'
  }

  async #sendLogs(wire: WireJob, entries: string[]): Promise<void> {
    const body = () => `{"executionId":${JSON.stringify(wire.executionId)},"pipelineId":${JSON.stringify(wire.pipelineId)},"entries":[${entries.join(',')}]}`
    try {
      const r = await this.#post('/logs', body)
      if (r.status >= 300) this.#o.logger.warn('the control plane refused job log lines', { executionId: wire.executionId, count: entries.length, status: r.status, error: errorBody(r.body) })
    } catch (e) {
      this.#o.logger.warn('job log lines could not be sent', { executionId: wire.executionId, count: entries.length, error: (e as Error).message })
    }
  }

  #scheduleHeartbeat(): void {
    const every = this.#session?.heartbeatMs ?? 10_000
    this.#heartbeatTimer = setTimeout(() => void this.#track(this.#heartbeat()), every)
  }

  async #heartbeat(): Promise<void> {
    const stats = this.#stats.sample()
    try {
      const r = await this.#post('/workers/heartbeat', () => JSON.stringify({ workerId: this.workerId, inFlight: this.#inFlight.size, ...stats }))
      if (r.status === 200) this.#setDrain((r.body as { drain?: unknown } | undefined)?.drain === true)
      else this.#o.logger.warn('heartbeat refused', { status: r.status, error: errorBody(r.body) })
    } catch (e) {
      this.#o.logger.warn('heartbeat failed', { error: e instanceof TransportError ? e.message : String(e) })
    }
    if (this.#heartbeatOn) this.#scheduleHeartbeat()
  }

  // A parked pull is left to finish: aborting it could lose jobs the control plane leased in its answer.
  #setDrain(drain: boolean): void {
    if (drain === this.#drain) return
    this.#drain = drain
    this.#o.logger.info(drain ? 'the control plane asked to drain: no more pulls' : 'drain lifted: pulling again')
    this.#wake()
  }

  #fatal(err: OnePipeError): void {
    if (this.#failure) return
    this.#failure = err
    if (this.#listeners.error.length > 0) for (const l of this.#listeners.error) l(err)
    else this.#o.logger.error(`worker stops: ${err.message}`, { code: err.code })
    void this.stop({ reason: `error: ${err.code}` })
  }

  #emitStopped(): void {
    for (const l of this.#listeners.stopped) l()
  }

  #installSignals(): void {
    if (!this.#o.handleSignals) return
    this.#onSignal = (signal) => {
      this.#o.logger.info(`${signal}: stopping (running jobs get up to ${this.#o.stopTimeoutMs} ms)`)
      void this.stop({ reason: signal })
    }
    process.on('SIGTERM', this.#onSignal)
    process.on('SIGINT', this.#onSignal)
  }

  #removeSignals(): void {
    if (!this.#onSignal) return
    process.off('SIGTERM', this.#onSignal)
    process.off('SIGINT', this.#onSignal)
    this.#onSignal = undefined
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#pending.add(p)
    const done = () => void this.#pending.delete(p)
    p.then(done, done)
    return p
  }

  #wake(): void {
    const w = this.#wakers
    this.#wakers = []
    for (const f of w) f()
  }

  #nextWake(): Promise<void> {
    return new Promise((resolve) => this.#wakers.push(resolve))
  }

  async #waitWake(ms: number): Promise<void> {
    const timer = new AbortController()
    await Promise.race([this.#nextWake(), sleep(ms, timer.signal)])
    timer.abort()
  }
}
