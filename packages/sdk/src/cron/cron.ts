import { randomUUID } from 'node:crypto'
import {
  ConfigError,
  engineMetrics,
  failSpan,
  newInstanceId,
  serializeError,
  encodeValue,
  isRetryable,
  stderrLogger,
  TimeoutError,
  traceContext,
  withSpan,
  type Component,
  type Database,
  type Logger,
  type RuntimeContext,
} from '@onepipe/core'
import type { Hono } from 'hono'
import { CronBuilder } from './builder.js'
import { mountCronRoutes } from './http.js'
import type { CronConfig, CronContext, CronInfo } from './types.js'

export type { CronConfig, CronContext, CronHandler, CronInfo, WorkflowStarter } from './types.js'
import { Lease } from './lease.js'
import {
  abandonStale,
  claimManual,
  claimTick,
  dbNow,
  enqueueManual,
  finishExecution,
  getExecution,
  lastTick,
  pausedAt,
  setPaused,
  listExecutions,
  pruneExecutions,
  selectLock,
  upsertJob,
  type CronExecution,
} from './sql.js'

const NOTIFY = 'onepipe_cron'
/** How often the lease holder deletes runs past the retention. */
const PRUNE_EVERY_MS = 3_600_000
/** Longest the scheduler sleeps without looking at the database (re-syncs the clock estimate). */
const MAX_SLEEP_MS = 30_000

/**
 * A scheduled job that runs exactly once per tick across every instance.
 *
 * Each tick's execution row is INSERTed before the handler runs and
 * `UNIQUE (job_name, scheduled_time)` makes that insert the one decision of
 * who runs it; the insert is fenced by a lease (30 s, renewed every 10 s)
 * whose token grows on every takeover. One instance at a time holds the
 * lease and runs ticks in order, never two at once unless `.overlap(true)`.
 * After downtime (or a takeover) missed ticks are run under the lease, at
 * most `maxCatchUp` of them, newest kept.
 *
 * Failover gap: a run the dead holder had claimed but not finished is
 * marked `abandoned` and not repeated (at most once per tick: repeating it
 * could duplicate its effect). Ticks that fell due while nobody held the
 * lease (up to the lease TTL plus one renew interval) are caught up by the
 * next holder when `.catchUp(true)`, and skipped otherwise.
 *
 * @example
 * ```ts
 * const report = Cron.create('daily-report').schedule('0 9 * * 1-5').timezone('Europe/Paris')
 *   .catchUp(true).maxCatchUp(10).db(db)
 *   .handler(async (ctx) => sendReport(ctx.scheduledTime))
 *   .build()
 * await report.start()
 * ```
 */
export class Cron implements Component {
  readonly kind = 'cron'
  readonly name: string
  readonly #c: CronConfig
  #db: Database | undefined
  #instance = newInstanceId()
  #log: Logger = stderrLogger
  #lease: Lease | undefined
  #started = false
  #stopping = false
  #loop: Promise<void> | undefined
  #wake: (() => void) | undefined
  #woken = false
  #sleepTimer: NodeJS.Timeout | undefined
  #abort = new AbortController()
  #inflight = new Set<Promise<void>>()
  #unlisten: Promise<() => Promise<void>> | undefined
  #doneWaiters = new Map<string, () => void>()
  #jobKnown = false
  #prunedAt = 0

  /** @internal Use {@link Cron.create}. */
  constructor(c: CronConfig) {
    this.#c = c
    this.name = c.name
    this.#db = c.db
  }

  /**
   * Starts a cron builder.
   *
   * @example
   * ```ts
   * const cleanup = Cron.create('cleanup').schedule('@hourly').db(db).handler(() => purge()).build()
   * ```
   */
  static create(name: string): CronBuilder {
    return new CronBuilder(name)
  }

  /** The cron expression it ticks on. */
  get schedule(): string {
    return this.#c.schedule.expression
  }

  /** The IANA time zone of the expression; undefined for the server's. */
  get timezone(): string | undefined {
    return this.#c.schedule.timezone
  }

  get #database(): Database {
    if (this.#db) return this.#db
    throw new ConfigError('CRON_NO_DB', `Cron "${this.name}" has no database: give it .db(db) or pass it to serve({ cron })`)
  }

  get #leaseOf(): Lease {
    this.#lease ??= new Lease(this.#database, this.name, this.#instance, this.#c.lease, this.#log, () => this.#wakeUp())
    return this.#lease
  }

  async #ensureJob(): Promise<void> {
    if (this.#jobKnown) return
    await upsertJob(this.#database, this.name, this.#c.schedule.expression, this.#c.schedule.timezone)
    this.#jobKnown = true
  }

  #ensureListening(): Promise<() => Promise<void>> {
    this.#unlisten ??= this.#database.listen(
      NOTIFY,
      (payload) => {
        const tab = payload.indexOf('\t')
        const what = payload.slice(0, tab)
        const arg = payload.slice(tab + 1)
        if (what === 'wake' && arg === this.name) this.#wakeUp()
        else if (what === 'done') this.#doneWaiters.get(arg)?.()
      },
      {
        // A wake or done sent while the connection was down is gone: the scheduler and every
        // trigger() waiting here look at the database again at once.
        onReconnect: () => {
          this.#log.warn({ job: this.name }, 'cron notifications reconnected; re-checking queued runs and waiters now')
          this.#wakeUp()
          for (const w of [...this.#doneWaiters.values()]) w()
        },
      },
    )
    return this.#unlisten
  }

  /**
   * Starts ticking on this instance (idempotent). Every instance may call
   * it: the lease decides which one runs the ticks.
   *
   * @example
   * ```ts
   * await report.start()
   * ```
   */
  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    this.#stopping = false
    this.#abort = new AbortController()
    try {
      await this.#ensureJob()
      await this.#ensureListening()
    } catch (e) {
      this.#started = false
      throw e
    }
    this.#loop = this.#run()
  }

  /**
   * Stops ticking: waits for a running handler (up to the shutdown timeout,
   * then aborts `ctx.signal`), gives the lease back if nothing is still
   * running, and stops listening.
   *
   * @example
   * ```ts
   * await report.stop()
   * ```
   */
  async stop(): Promise<void> {
    this.#stopping = true
    this.#wakeUp()
    const settled = Promise.allSettled([this.#loop, ...this.#inflight])
    let timer: NodeJS.Timeout | undefined
    const timedOut = await Promise.race([settled.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), this.#c.shutdownMs)))])
    clearTimeout(timer)
    if (timedOut) {
      this.#log.warn({ job: this.name }, 'cron stop: a run is still going after the shutdown timeout; aborting ctx.signal and leaving the lease to expire')
      this.#abort.abort(new TimeoutError('CRON_SHUTDOWN', `Cron "${this.name}" is stopping`))
      await this.#lease?.abandon()
    } else {
      try {
        const held = this.#lease?.token !== undefined
        await this.#lease?.release()
        // Another instance takes over now rather than at its next look (a rolling deploy has no gap).
        if (held) await this.#database.notify(NOTIFY, `wake\t${this.name}`)
      } catch (err) {
        // The lease then runs out by itself after its TTL.
        this.#log.error({ err, job: this.name }, 'cron stop: could not release the lease')
      }
    }
    this.#started = false
    this.#loop = undefined
    const un = this.#unlisten
    this.#unlisten = undefined
    if (un) await (await un)()
  }

  #wakeUp(): void {
    const w = this.#wake
    this.#wake = undefined
    // Not sleeping right now (mid-step): the next sleep must return at once, or the wake-up is lost.
    if (w) w()
    else this.#woken = true
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopping || this.#woken) {
      this.#woken = false
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      this.#wake = () => {
        clearTimeout(this.#sleepTimer)
        resolve()
      }
      this.#sleepTimer = setTimeout(() => this.#wakeUp(), Math.max(0, ms))
    })
  }

  async #run(): Promise<void> {
    const lease = this.#leaseOf
    while (!this.#stopping) {
      let waitMs = this.#c.lease.renewMs
      try {
        if (lease.token === undefined) {
          const st = await lease.tryAcquire()
          if (st.acquired) {
            const n = await abandonStale(this.#database, this.name, st.fencingToken)
            this.#log.info({ job: this.name, fencingToken: st.fencingToken, abandoned: n }, 'cron lease acquired')
          } else {
            // Look again when the holder's lease would run out (it renews well before).
            waitMs = Math.min(this.#c.lease.renewMs, Math.max(20, st.expiresAt.getTime() - st.now.getTime() + 20))
          }
        }
        if (lease.token !== undefined) waitMs = await this.#runDue(lease)
      } catch (err) {
        this.#log.error({ err, job: this.name }, 'cron scheduler step failed; retrying')
        waitMs = Math.min(this.#c.lease.renewMs, 1000)
      }
      await this.#sleep(waitMs)
    }
  }

  /** Runs queued manual runs and due ticks while holding the lease; answers how long to sleep. */
  async #runDue(lease: Lease): Promise<number> {
    const db = this.#database
    for (;;) {
      const token = lease.token
      if (token === undefined || this.#stopping) return 0
      const m = await claimManual(db, this.name, this.#instance, token)
      if (!m) break
      await this.#execute({ ...m, kind: 'manual' }, token)
    }
    const t0 = Date.now()
    const { last, createdAt, paused, now } = await lastTick(db, this.name)
    lease.observe(now, t0, Date.now())
    // Paused: manual runs above still ran; ticks wait for resume(), whose notification wakes this loop.
    if (paused) return MAX_SLEEP_MS
    const s = this.#c.schedule
    const max = this.#c.catchUp ? this.#c.maxCatchUp : 1
    const { dropped, ticks: due } = s.due(last ?? createdAt, now, max)
    let ticks = due
    if (!this.#c.catchUp) {
      // Without catch-up only a tick that fell due within one lease TTL runs (a failover's tick, not a restart's).
      ticks = ticks.filter((t) => now.getTime() - t.getTime() <= this.#c.lease.ttlMs)
    }
    if (dropped && this.#c.catchUp) this.#log.warn({ job: this.name, maxCatchUp: max }, 'cron: more ticks were missed than maxCatchUp; the oldest are skipped')
    for (const [i, t] of ticks.entries()) {
      const token = lease.token
      if (token === undefined || this.#stopping) return 0
      const executionId = randomUUID()
      const kind = i === ticks.length - 1 ? 'scheduled' : 'catch_up'
      const claim = await claimTick(db, { executionId, job: this.name, scheduledTime: t, kind, instance: this.#instance, token })
      if (!claim.held) {
        lease.drop()
        return 0
      }
      if (claim.startedAt) await this.#execute({ executionId, scheduledTime: t, startedAt: claim.startedAt, kind }, token)
    }
    if (Date.now() - this.#prunedAt > PRUNE_EVERY_MS) {
      this.#prunedAt = Date.now()
      await pruneExecutions(db, this.name, this.#c.retentionMs)
    }
    const next = s.next(new Date(Math.max(now.getTime(), lease.dbNowMs())))
    if (!next) return MAX_SLEEP_MS
    return Math.min(MAX_SLEEP_MS, next.getTime() - lease.dbNowMs())
  }

  /** Runs the handler for a claimed run and records its outcome; waits for it unless the job allows overlap. */
  #execute(run: { executionId: string; scheduledTime: Date; startedAt: Date; kind: CronExecution['kind'] }, token: number): Promise<void> {
    const p = this.#invoke(run, token)
    this.#inflight.add(p)
    void p.finally(() => this.#inflight.delete(p))
    return this.#c.overlap ? Promise.resolve() : p
  }

  async #invoke(run: { executionId: string; scheduledTime: Date; startedAt: Date; kind: CronExecution['kind'] }, token: number): Promise<void> {
    const db = this.#database
    const ctx: CronContext = {
      jobName: this.name,
      scheduledTime: run.scheduledTime,
      actualTime: run.startedAt,
      executionId: run.executionId,
      kind: run.kind,
      fencingToken: token,
      db,
      signal: this.#abort.signal,
    }
    if (run.kind !== 'manual') engineMetrics.cronFireLateness.with(this.name).observe(Math.max(0, run.startedAt.getTime() - run.scheduledTime.getTime()) / 1000)
    type Outcome = { status: 'completed' | 'failed'; output: string | null; error: object | null }
    const attributes = { 'onepipe.cron.job': this.name, 'onepipe.cron.execution_id': run.executionId, 'onepipe.cron.kind': run.kind, 'onepipe.cron.scheduled_time': run.scheduledTime.toISOString() }
    // A tick is nobody's request: each run is the root of a trace of its own.
    const outcome = await withSpan(`cron.run ${this.name}`, { kind: 'internal', parent: traceContext(null), attributes }, async (span): Promise<Outcome> => {
      try {
        const out = await this.#c.handler(ctx)
        // An output that cannot round-trip is the handler's bug: the run fails with the reason, once.
        const text = encodeValue(out, { subject: `output of cron job "${this.name}"`, code: 'INVALID_RESULT', status: 500, allowUndefined: true })
        return { status: 'completed', output: text ?? null, error: null }
      } catch (err) {
        failSpan(span, err)
        this.#log.error({ err, job: this.name, executionId: run.executionId }, 'cron run failed')
        return { status: 'failed', output: null, error: serializeError(err) }
      }
    })
    engineMetrics.cronRuns.with(this.name, outcome.status).inc()
    const record = async (o: Outcome) => {
      // The run already happened: a transient database error is retried (within the lease) so
      // the tick is not left looking abandoned; a permanent one is recorded as the run's failure.
      for (let i = 0; ; i++) {
        try {
          return await finishExecution(db, { executionId: run.executionId, instance: this.#instance, token, ...o })
        } catch (err) {
          if (!isRetryable(err) || i >= 3) throw err
          await new Promise((r) => setTimeout(r, 100 * 2 ** i))
        }
      }
    }
    try {
      try {
        await record(outcome)
      } catch (err) {
        if (isRetryable(err)) throw err
        await record({ status: 'failed', output: null, error: serializeError(err) })
      }
      if (run.kind === 'manual') await db.notify(NOTIFY, `done\t${run.executionId}`)
    } catch (err) {
      this.#log.error({ err, job: this.name, executionId: run.executionId }, 'cron: could not record the outcome of a run')
    }
  }

  /**
   * Runs the job now, once, through the same lease as the ticks: the run is
   * queued, the instance holding the lease runs it (this one if no other
   * does), and the recorded execution (kind `manual`) is returned when it
   * finished. A failed run is returned with `status: 'failed'`.
   *
   * @example
   * ```ts
   * const run = await report.trigger()
   * console.log(run.status, run.output)
   * ```
   */
  async trigger(options: { timeoutMs?: number } = {}): Promise<CronExecution> {
    const db = this.#database
    await this.#ensureJob()
    await this.#ensureListening()
    const id = randomUUID()
    let signalDone: () => void = () => {}
    const deadline = Date.now() + (options.timeoutMs ?? 300_000)
    try {
      await enqueueManual(db, id, this.name)
      await db.notify(NOTIFY, `wake\t${this.name}`)
      for (;;) {
        const done = new Promise<void>((r) => (signalDone = r))
        this.#doneWaiters.set(id, () => signalDone())
        if (!this.#started) await this.#runOnce()
        const ex = await getExecution(db, id)
        if (ex && ex.status !== 'queued' && ex.status !== 'running') return ex
        const left = deadline - Date.now()
        if (left <= 0) throw new TimeoutError('CRON_TRIGGER_TIMEOUT', `Cron "${this.name}": the manual run ${id} did not finish in time; see history()`, { executionId: id })
        // Fallback re-check in case a notification was missed (and to take over a dead holder's lease).
        let t: NodeJS.Timeout | undefined
        await Promise.race([done, new Promise<void>((r) => (t = setTimeout(r, Math.min(left, this.#c.lease.renewMs))))])
        clearTimeout(t)
      }
    } finally {
      this.#doneWaiters.delete(id)
      if (!this.#started) {
        const un = this.#unlisten
        this.#unlisten = undefined
        if (un) await (await un)()
      }
    }
  }

  /** On an instance that is not ticking: takes the lease if free, runs queued manual runs, gives it back. */
  async #runOnce(): Promise<void> {
    const lease = this.#leaseOf
    const st = await lease.tryAcquire()
    if (!st.acquired) return
    try {
      await abandonStale(this.#database, this.name, st.fencingToken)
      for (;;) {
        const token = lease.token
        if (token === undefined) return
        const m = await claimManual(this.#database, this.name, this.#instance, token)
        if (!m) return
        await this.#invoke({ ...m, kind: 'manual' }, token)
      }
    } finally {
      await lease.release()
    }
  }

  /**
   * Recorded runs, newest tick first.
   *
   * @example
   * ```ts
   * const last10 = await report.history({ limit: 10, since: new Date(Date.now() - 86_400_000) })
   * ```
   */
  async history(options: { limit?: number; since?: Date } = {}): Promise<CronExecution[]> {
    return listExecutions(this.#database, this.name, options.limit ?? 100, options.since)
  }

  /**
   * The job as it stands: schedule, next tick, and the lease (which
   * instance runs the ticks, with which fencing token, until when). The
   * lease's `holder` is the instance id that `history()` shows as
   * `instanceId` of the runs it claimed.
   *
   * @example
   * ```ts
   * const { lease, nextRun } = await report.info()
   * console.log(lease?.live ? `held by ${lease.holder} until ${lease.expiresAt.toISOString()}` : 'nobody holds the lease', nextRun)
   * ```
   */
  async info(): Promise<CronInfo> {
    const [l, paused] = await Promise.all([selectLock(this.#database, this.name), pausedAt(this.#database, this.name)])
    const now = l?.now ?? (await dbNow(this.#database))
    return {
      jobName: this.name,
      pausedAt: paused,
      schedule: this.#c.schedule.expression,
      timezone: this.#c.schedule.timezone,
      nextRun: this.#c.schedule.next(now),
      instanceId: this.#instance,
      lease: l ? { holder: l.lockedBy, fencingToken: l.fencingToken, acquiredAt: l.lockedAt, expiresAt: l.expiresAt, live: l.expiresAt.getTime() > now.getTime() } : null,
    }
  }

  /**
   * Queues a manual run and returns at once with its execution id; the
   * instance holding the lease runs it (see {@link Cron.trigger}, which
   * waits for the outcome). Follow it with `history()`.
   *
   * @example
   * ```ts
   * const { executionId } = await report.enqueue()
   * ```
   */
  async enqueue(): Promise<{ executionId: string }> {
    const db = this.#database
    await this.#ensureJob()
    const executionId = randomUUID()
    await enqueueManual(db, executionId, this.name)
    await db.notify(NOTIFY, `wake\t${this.name}`)
    return { executionId }
  }

  /**
   * The next `n` ticks after now (database clock), fewer when the
   * expression stops firing.
   *
   * @example
   * ```ts
   * await report.nextRuns(5) // [Date, Date, …]
   * ```
   */
  async nextRuns(n: number): Promise<Date[]> {
    return this.#c.schedule.nextN(n, await dbNow(this.#database))
  }

  /**
   * Pauses the job on every instance: no scheduled tick is claimed until
   * {@link Cron.resume}; `trigger()` still runs it. Idempotent.
   *
   * @example
   * ```ts
   * await report.pause() // e.g. while the mail provider is down
   * ```
   */
  async pause(): Promise<void> {
    await this.#setPaused(true)
  }

  /**
   * Resumes a paused job. Ticks that fell while it was paused are not
   * caught up: the next one runs at its time. Idempotent.
   *
   * @example
   * ```ts
   * await report.resume()
   * ```
   */
  async resume(): Promise<void> {
    await this.#setPaused(false)
  }

  async #setPaused(paused: boolean): Promise<void> {
    await this.#ensureJob()
    await setPaused(this.#database, this.name, paused)
    await this.#database.notify(NOTIFY, `wake\t${this.name}`)
  }

  /**
   * The next tick after now (database clock), or null if the expression never fires again.
   *
   * @example
   * ```ts
   * console.log('next report at', await report.nextRun())
   * ```
   */
  async nextRun(): Promise<Date | null> {
    return this.#c.schedule.next(await dbNow(this.#database))
  }

  /** Mounts the operators' routes under `/__onepipe/cron` (called by `serve()`, behind its guard). */
  routes(app: unknown, rt?: RuntimeContext): void {
    if (rt) this.#db ??= rt.db
    mountCronRoutes(app as Hono, this, rt?.logger ?? stderrLogger)
  }

  /** Starts ticking under `serve()`, on the app's database unless `.db()` was given. */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#log = rt.logger.child({ cron: this.name })
    // A lease object already made (by an earlier trigger()) keeps the id it was made with.
    if (!this.#lease) this.#instance = rt.instanceId
    this.#db ??= rt.db
    await this.start()
  }

  /** Stops ticking and waits for a running job, bounded by the shutdown timeout (called by `serve()`). */
  async detach(): Promise<void> {
    await this.stop()
  }
}
