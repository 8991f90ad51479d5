import { DatabaseError, encodeValue, OnePipeError, retryDelay, type Database, type Logger, type Queryable } from '@onepipe/core'
import { CHANGES_CHANNEL, notifyReady, READY_CHANNEL } from '@onepipe/sdk'
import { attemptNotFound, JobCancelledError, StaleAttemptError } from './errors.js'
import * as sql from './sql.js'
import { insertLogs } from './sql-ops.js'
import { claimStagesById } from '../dispatch/rabbitmq-sql.js'
import type { HandlerPolicies } from './policies.js'
import type { ClaimedRow, StageRow } from './sql.js'

// The NOTIFY channel of pipeline and stage changes lives beside the pipeline store, which publishes creations too.
export { CHANGES_CHANNEL }

/**
 * One change of a pipeline, as every replica publishes it (live updates
 * for the dashboard).
 *
 * @example
 * ```ts
 * { appId: '9c…', pipelineId: '3f…', stage: 'analyze', stageStatus: 'Completed', pipelineStatus: 'Running' }
 * ```
 */
export interface PipelineChange {
  appId: string
  pipelineId: string
  stage?: string
  stageStatus?: string
  pipelineStatus?: string
}

/**
 * A job as a worker gets it from `POST /jobs/pull` (docs/protocol/workers.md).
 *
 * @example
 * ```ts
 * { executionId: '…', stageId: '…', pipelineId: '…', stageName: 'analyze', handler: 'vision.analyze', attempt: 1,
 *   input: { file: 'a.pdf' }, upstream: {}, context: {}, leaseMs: 30000, leaseExpiresAt: '2026-…Z' }
 * ```
 */
export interface Job {
  executionId: string
  stageId: string
  pipelineId: string
  stageName: string
  handler: string
  attempt: number
  input: unknown
  upstream: Record<string, unknown>
  context: Record<string, unknown>
  leaseMs: number
  leaseExpiresAt: string
  /** When the stage's timeout ends this attempt (absent without a timeout). */
  deadline?: string
  /** The same as a duration from the answer, so a worker needs no clock agreement. */
  deadlineInMs?: number
}

/**
 * What a worker reports about an attempt (`POST /jobs/ack`).
 *
 * @example
 * ```ts
 * { executionId: '…', status: 'failed', error: { message: 'model overloaded', retryable: true } }
 * ```
 */
export interface Ack {
  executionId: string
  /** `released`: the worker hands the job back unrun (it is stopping); the stage is ready again at once and no retry is spent. */
  status: 'completed' | 'failed' | 'released'
  output?: unknown
  error?: { message: string; code?: string | undefined; retryable?: boolean | undefined; name?: string | undefined }
  context?: Record<string, unknown>
  /** Log lines of the attempt, stored in the ack's transaction. */
  logs?: { level: string; message: string; at?: string | undefined; fields?: Record<string, unknown> | undefined }[]
}

/** The engine's timings (ms). */
export interface EngineOptions {
  leaseMs: number
  log: Logger
  /** Where claims and the watchdog run, one statement at a time (default the database itself). */
  lane?: Database
  /** Per-handler policies; without them every claim takes the one-statement path. */
  policies?: HandlerPolicies
}

const iso = (d: Date | null | undefined): string | undefined => (d ? new Date(d).toISOString() : undefined)

/**
 * The stage engine: hands stages out, takes acks and renewals fenced by
 * execution id, retries, times out and releases dependents. Stateless
 * between calls; any number of replicas share one database.
 */
export class StageEngine {
  readonly #db: Database
  /** Claims and the watchdog run here: a dedicated connection on PostgreSQL (see {@link StageEngine.#serial}). */
  readonly #laneDb: Database
  readonly #o: EngineOptions
  readonly #ready: string
  readonly #changes: string
  #retryTimer: NodeJS.Timeout | undefined
  #lane: Promise<unknown> = Promise.resolve()
  #publishing = false
  #retryAt = Infinity

  constructor(db: Database, o: EngineOptions) {
    this.#db = db
    this.#laneDb = o.lane ?? db
    this.#o = o
    this.#ready = db.channel(READY_CHANNEL)
    this.#changes = db.channel(CHANGES_CHANNEL)
  }

  /** Claims up to `max` ready stages of `handlers` for a worker. */
  async claim(appId: string, handlers: readonly string[], max: number, workerId: string | null): Promise<Job[]> {
    const p = this.#o.policies
    const rows = p?.limits(appId, handlers)
      ? await this.#serialTx((tx) => p.claim(tx, { appId, handlers, max, workerId, leaseMs: this.#o.leaseMs }))
      : await this.#serial(() => sql.claimStages(this.#laneDb, appId, handlers, max, workerId, this.#o.leaseMs))
    return rows.map((r) => this.#job(r))
  }

  /**
   * Claims the stages named by dispatch messages, each only if it is still
   * Pending: a message for a stage that was claimed, cancelled or changed
   * meanwhile yields nothing (RabbitMQ dispatch).
   *
   * @example
   * ```ts
   * const jobs = await engine.claimByIds(appId, [stageId], workerId)
   * ```
   */
  async claimByIds(appId: string, stageIds: readonly string[], workerId: string | null): Promise<Job[]> {
    const p = this.#o.policies
    const rows = p?.limitsAny(appId)
      ? await this.#serialTx((tx) => p.claimByIds(tx, { appId, stageIds, workerId, leaseMs: this.#o.leaseMs }))
      : await this.#serial(() => claimStagesById(this.#laneDb, appId, stageIds, workerId, this.#o.leaseMs))
    return rows.map((r) => this.#job(r))
  }

  #job(r: ClaimedRow): Job {
    const deadline = iso(r.deadline_at)
    return {
      executionId: r.execution_id ?? '',
      stageId: r.id,
      pipelineId: r.pipeline_id,
      stageName: r.name,
      handler: r.handler,
      attempt: r.attempt,
      input: r.input ?? r.pipeline_input ?? null,
      upstream: r.upstream ?? {},
      context: r.context,
      leaseMs: this.#o.leaseMs,
      leaseExpiresAt: iso(r.lease_expires_at) ?? '',
      ...(deadline && r.deadline_at ? { deadline, deadlineInMs: Math.max(0, new Date(r.deadline_at).getTime() - Date.now()) } : {}),
    }
  }

  /**
   * Extends the lease of a current attempt.
   *
   * @throws StaleAttemptError / JobCancelledError (409) for an attempt that is over; NotFoundError (404) for an unknown one
   */
  async renew(appId: string, executionId: string): Promise<{ leaseExpiresAt: string; deadline?: string }> {
    const row = await sql.renewLease(this.#db, appId, executionId, this.#o.leaseMs)
    if (row) {
      const deadline = iso(row.deadline_at)
      return { leaseExpiresAt: iso(row.lease_expires_at) ?? '', ...(deadline ? { deadline } : {}) }
    }
    throw await this.#whyNot(this.#db, appId, executionId)
  }

  async #whyNot(q: Queryable, appId: string, executionId: string): Promise<Error> {
    const a = await sql.explainAttempt(q, appId, executionId)
    if (!a) return attemptNotFound(executionId)
    if (a.outcome === 'cancelled' || a.pipeline_status === 'Cancelled') return new JobCancelledError(executionId)
    const why = a.outcome ?? (a.current && a.stage_status === 'Running' ? 'its lease or deadline passed' : 'another attempt replaced it')
    return new StaleAttemptError(executionId, why)
  }

  /**
   * Applies one ack: completes the stage (releasing what depends on it) or
   * fails the attempt (retry by policy, or fail and skip what depends on
   * it), in one transaction locked on the pipeline.
   *
   * @returns the stage's status after the ack
   * @throws StaleAttemptError / JobCancelledError (409), NotFoundError (404); ValidationError (400) for an output that is not plain JSON
   */
  async ack(appId: string, a: Ack): Promise<{ stageStatus: string }> {
    const [r] = await this.ackMany(appId, [a])
    if (!r || 'error' in r) throw r?.error ?? attemptNotFound(a.executionId)
    return { stageStatus: r.stageStatus }
  }

  /**
   * Applies several acks in one transaction (one commit for the batch),
   * locking their pipelines in id order. Each gets its own answer: the
   * stage's status, or the error it alone would have got (400, 404, 409).
   * A database error fails the batch's transaction; the acks are then
   * applied one transaction each, so one bad ack never costs the others.
   *
   * @example
   * ```ts
   * const results = await engine.ackMany(appId, [{ executionId, status: 'completed', output: 1 }])
   * ```
   */
  async ackMany(appId: string, acks: readonly Ack[]): Promise<({ executionId: string; stageStatus: string } | { executionId: string; error: OnePipeError })[]> {
    const results = new Map<number, { executionId: string; stageStatus: string } | { executionId: string; error: OnePipeError }>()
    const ready: { i: number; a: Ack; v: EncodedAck }[] = []
    acks.forEach((a, i) => {
      try {
        ready.push({ i, a, v: encodeAck(a) })
      } catch (e) {
        results.set(i, { executionId: a.executionId, error: e as OnePipeError })
      }
    })
    const apply = async (batch: typeof ready): Promise<void> => {
      const out = await this.#tx(async (tx) => {
        const locked = new Map((await sql.lockPipelinesOfAttempts(tx, appId, batch.map((b) => b.a.executionId))).map((r) => [r.execution_id, r]))
        const done: { i: number; executionId: string; stage?: StageRow; error?: OnePipeError }[] = []
        for (const { i, a, v } of batch) {
          const p = locked.get(a.executionId)
          if (!p) done.push({ i, executionId: a.executionId, error: attemptNotFound(a.executionId) })
          else if (p.status === 'Cancelled') done.push({ i, executionId: a.executionId, error: new JobCancelledError(a.executionId) })
          else {
            const stage = await this.#applyOne(tx, appId, p.id, a, v)
            done.push(stage ? { i, executionId: a.executionId, stage } : { i, executionId: a.executionId, error: (await this.#whyNot(tx, appId, a.executionId)) as OnePipeError })
          }
        }
        await this.#o.policies?.afterAcks(tx, appId, batch.flatMap((b, k) => (done[k]?.stage ? [{ handler: done[k].stage.handler, status: b.a.status }] : [])))
        return done
      })
      for (const d of out) {
        if (d.stage) {
          this.#scheduleRetry(d.stage)
          results.set(d.i, { executionId: d.executionId, stageStatus: d.stage.status })
        } else results.set(d.i, { executionId: d.executionId, error: d.error ?? attemptNotFound(d.executionId) })
      }
    }
    if (ready.length > 0) {
      try {
        await apply(ready)
      } catch (e) {
        if (!(e instanceof DatabaseError) || ready.length === 1) throw e
        for (const one of ready) {
          try {
            await apply([one])
          } catch (err) {
            if (!(err instanceof OnePipeError) || err.status >= 500) throw err
            results.set(one.i, { executionId: one.a.executionId, error: err })
          }
        }
      }
    }
    return acks.map((a, i) => results.get(i) ?? { executionId: a.executionId, error: attemptNotFound(a.executionId) })
  }

  /** One ack inside the batch's transaction, its pipeline locked; undefined when the attempt is not current. */
  async #applyOne(tx: Queryable, appId: string, pipelineId: string, a: Ack, v: EncodedAck): Promise<StageRow | undefined> {
    if (a.status === 'completed') {
      // The common case in one statement: complete, release, wake, finish, publish.
      const done = await sql.completeAndRelease(tx, { executionId: a.executionId, outputJson: v.output, ready: this.#ready, changes: this.#publishing ? this.#changes : null })
      if (!done) return undefined
      await this.#extras(tx, appId, pipelineId, done.id, a, v)
      return done
    }
    let stage: StageRow | undefined
    if (a.status === 'released') stage = await sql.releaseAttempt(tx, a.executionId)
    else {
      const current = await sql.stageByExecution(tx, a.executionId)
      const delay = current ? retryDelay({ attempts: current.max_retries + 1, backoff: current.backoff, delayMs: current.retry_interval_ms, maxDelayMs: current.max_retry_interval_ms }, current.attempt - current.lease_expiries) : 0
      stage = await sql.failAttempt(tx, { executionId: a.executionId, errorJson: v.error ?? '{}', retryable: a.error?.retryable !== false, delayMs: delay, outcome: 'failed', expiredOnly: false })
    }
    if (!stage) return undefined
    await this.#extras(tx, appId, pipelineId, stage.id, a, v)
    await this.#afterStageChange(tx, stage)
    return stage
  }

  /** Context items and log lines an ack brings, in its transaction. */
  async #extras(tx: Queryable, appId: string, pipelineId: string, stageId: string, a: Ack, v: EncodedAck): Promise<void> {
    if (v.context !== null) await sql.mergeContext(tx, pipelineId, v.context)
    if (v.logs) await insertLogs(tx, appId, pipelineId, JSON.stringify(v.logs.map((l) => ({ ...l, stage_id: stageId, execution_id: a.executionId }))))
  }

  /**
   * What follows a stage's change inside its transaction: dependents
   * released (their handlers woken) or skipped, the pipeline finished when
   * nothing is left, and the change published when anyone listens.
   */
  async #afterStageChange(tx: Queryable, stage: StageRow): Promise<string | undefined> {
    if (stage.status === 'Completed' || (stage.status === 'Failed' && stage.run_next_if_failed) || stage.status === 'Skipped') {
      await sql.releaseDependents(tx, stage.pipeline_id, stage.name, this.#ready, stage.app_id)
    } else if (stage.status === 'Pending') {
      await notifyReady(tx, this.#ready, stage.app_id, [stage.handler])
    } else if (stage.status === 'Failed') {
      await sql.skipDependents(tx, stage.pipeline_id, stage.name, JSON.stringify({ code: 'DEPENDENCY_FAILED', message: `Stage "${stage.name}" failed` }))
    }
    const change = { appId: stage.app_id, pipelineId: stage.pipeline_id, stage: stage.name, stageStatus: stage.status }
    if (stage.status === 'RetryScheduled' || stage.status === 'Pending') {
      await this.publish(tx, change)
      return undefined
    }
    return sql.finishIfDone(tx, stage.pipeline_id, this.#publishing ? { channel: this.#changes, change } : undefined)
  }

  /**
   * Whether stage changes are published (NOTIFY): only while some replica
   * has a live subscriber (the control plane keeps this up to date), since
   * every listening connection pays for every notification.
   */
  set publishing(on: boolean) {
    this.#publishing = on
  }

  /** Publishes a change to every replica (delivered at commit inside a transaction). */
  async publish(q: Queryable, c: PipelineChange): Promise<void> {
    if (!this.#publishing) return
    await q.execute('SELECT pg_notify($1, $2)', [this.#changes, JSON.stringify(c)])
  }

  /** Wakes pulls parked on `handlers` in every replica. */
  async wake(q: Queryable, appId: string, handlers: readonly string[]): Promise<void> {
    await notifyReady(q, this.#ready, appId, handlers)
  }

  /**
   * The watchdog's pass: attempts whose lease or deadline passed end
   * (retried by policy or failed), due retries become ready. Safe on every
   * replica at once: each transition locks its pipeline and re-checks.
   *
   * @returns how many attempts it ended and retries it made ready
   */
  async sweep(): Promise<{ expired: number; promoted: number }> {
    let expired = 0
    for (const e of await this.#serial(() => sql.expiredAttempts(this.#laneDb, 200))) {
      const done = await this.#serialTx(async (tx) => {
        const p = await sql.lockPipelineOfAttempt(tx, e.app_id, e.execution_id)
        if (!p) return undefined
        const current = await sql.stageByExecution(tx, e.execution_id)
        if (!current) return undefined
        const delay = retryDelay({ attempts: current.max_retries + 1, backoff: current.backoff, delayMs: current.retry_interval_ms, maxDelayMs: current.max_retry_interval_ms }, current.attempt - current.lease_expiries)
        const error = e.timed_out
          ? { code: 'STAGE_TIMEOUT', message: `The attempt ran past the stage's timeout of ${current.timeout_ms} ms`, retryable: true }
          : { code: 'LEASE_EXPIRED', message: 'The worker stopped renewing the lease (it died, hung or lost its connection)', retryable: true }
        const stage = await sql.failAttempt(tx, { executionId: e.execution_id, errorJson: JSON.stringify(error), retryable: true, delayMs: delay, outcome: e.timed_out ? 'timed_out' : 'lease_expired', expiredOnly: true })
        if (stage) {
          await this.#afterStageChange(tx, stage)
          await this.#o.policies?.afterAcks(tx, stage.app_id, [{ handler: stage.handler, status: 'failed' }])
        }
        return stage
      })
      if (done) {
        expired++
        this.#scheduleRetry(done)
      }
    }
    const promoted = await this.#promote()
    return { expired, promoted }
  }

  async #promote(): Promise<number> {
    return this.#serial(() => sql.promoteDueRetries(this.#laneDb, this.#ready))
  }

  /** A retry scheduled here is made ready at its time by this process, not at the next sweep. */
  #scheduleRetry(stage: StageRow): void {
    if (stage.status !== 'RetryScheduled' || !stage.ready_at) return
    const at = new Date(stage.ready_at).getTime()
    if (at >= this.#retryAt) return
    clearTimeout(this.#retryTimer)
    this.#retryAt = at
    this.#retryTimer = setTimeout(() => {
      this.#retryAt = Infinity
      this.#retryTimer = undefined
      this.#promote().catch((err: unknown) => this.#o.log.warn({ err }, 'pipelines: making due retries ready failed; the next sweep will'))
    }, Math.max(0, at - Date.now()))
    this.#retryTimer.unref()
  }

  /** Stops the retry timer (the sweep of any replica picks up the rest). */
  close(): void {
    clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    this.#retryAt = Infinity
  }

  /**
   * The work this process does for parked pulls and the watchdog runs one
   * statement or transaction at a time: while workers wait, the control
   * plane holds its LISTEN connection and one pooled connection, however
   * many pulls are parked (acks, which callers wait on, use the pool).
   */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lane.then(fn)
    this.#lane = run.catch(() => undefined)
    return run
  }

  #serialTx<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#serial(() => this.#tx(fn, this.#laneDb))
  }

  /** @internal A transaction, run again on a deadlock or serialization failure (every transition re-checks its state). */
  async #tx<T>(fn: (tx: Queryable) => Promise<T>, db: Database = this.#db): Promise<T> {
    for (let i = 1; ; i++) {
      try {
        return await db.transaction(fn)
      } catch (e) {
        if (!(e instanceof DatabaseError) || !e.retryable || i >= 3) throw e
      }
    }
  }

  /** @internal Runs `fn` in the process's serial lane with the lane's database (the watchdog's other statements). */
  serially<T>(fn: (lane: Database) => Promise<T>): Promise<T> {
    return this.#serial(() => fn(this.#laneDb))
  }

  /** @internal For the operator actions (ops.ts): a retried transaction and the after-change step. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#tx(fn)
  }

  /** @internal */
  afterStageChange(tx: Queryable, stage: StageRow): Promise<string | undefined> {
    return this.#afterStageChange(tx, stage)
  }
}

/** An ack's values, encoded (and so checked) before its transaction. */
interface EncodedAck {
  output: string | null
  context: string | null
  error: string | null
  logs: Ack['logs'] | undefined
}

/** @throws ValidationError (400) naming the path of a value that is not plain JSON */
function encodeAck(a: Ack): EncodedAck {
  const logs = a.logs && a.logs.length > 0 ? a.logs : undefined
  if (logs) encodeValue(logs, { subject: 'logs' })
  return {
    output: a.status === 'completed' && a.output !== undefined ? encodeValue(a.output, { subject: 'output' }) : null,
    context: a.context && Object.keys(a.context).length > 0 ? encodeValue(a.context, { subject: 'context' }) : null,
    error: a.status === 'failed' ? encodeValue(stageError(a.error), { subject: 'error' }) : null,
    logs,
  }
}

/** The stored form of a worker's error: message, code, name, retryable; nothing else. */
function stageError(e: Ack['error']): Record<string, unknown> {
  return {
    message: e?.message ?? 'The worker reported a failure without a message',
    ...(e?.code === undefined ? {} : { code: e.code }),
    ...(e?.name === undefined ? {} : { name: e.name }),
    retryable: e?.retryable !== false,
  }
}
