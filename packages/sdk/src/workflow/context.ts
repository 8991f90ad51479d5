// One execution of a run in this process: the ctx a workflow body gets.
//
// Replay: the body runs from the top every time the run is claimed; each
// ctx call gets a stable id (name + call order) and returns the recorded
// result when there is one. A run that sleeps or waits "parks": ctx calls
// that would have to wait hand back a promise that never settles, the
// executor sees the run parked once no step is in flight, and gives the lease
// up until the wake time. Parking (instead of throwing) means a body's own
// try/catch can never swallow a suspension and carry on.
//
// A new sleep is recorded by the statement that parks the run (see
// `parkRun`), not before it: recorded first and parked in a second
// statement, the run was visible in between as sleeping (its sleep step and
// wake time stored) yet still owned and running with no wake time, and a
// crash there left it to the stale-lease takeover instead of its wake time.
import {
  ConfigError,
  DatabaseError,
  TimeoutError,
  TransportError,
  decodeValue,
  deserializeError,
  encodeValue,
  endSpan,
  engineMetrics,
  inSpan,
  isRetryable,
  parseDuration,
  serializeError,
  startSpan,
  type Database,
  type Duration,
  type Logger,
  type OtelSpan,
  type Queryable,
  type SerializedError,
} from '@onepipe/core'
import {
  consumeSignal,
  limitIdleInTransaction,
  recordTransactionStep,
  selectSteps,
  insertSleep,
  insertSteps,
  insertWaiting,
  timeoutWaiting,
  type Lease,
  type PendingSleep,
  type PendingStep,
  type RunRow,
  type StepRow,
} from './sql.js'
import {
  WorkflowCancelledError,
  resolveRetry,
  retryDelay,
  type Appendable,
  type ChildWorkflow,
  type ResolvedRetry,
  type StepOptions,
  type WorkflowContext,
} from './types.js'

/** What an execution needs from the engine running it. */
export interface ExecutionHost {
  readonly db: Database
  readonly owner: string
  readonly logger: Logger
  /** How long a silent lease lasts (ms); bounds how long a `ctx.transaction` may idle. */
  readonly staleMs: number
  /**
   * Waits for room to open a `ctx.transaction` (each holds a pooled
   * connection for its whole length); answers the function that gives it back.
   */
  transactionSlot(): Promise<() => void>
  /** Starts (or finds) a child run; answers its row. */
  startChild(workflow: ChildWorkflow<unknown, unknown>, input: unknown, childId: string, parentId: string): Promise<RunRow>
}

/** Why an execution stopped before its body finished. */
export type StopReason = 'cancelled' | 'lease-lost' | 'shutdown' | 'infra' | 'failed'

const never = <T>(): Promise<T> => new Promise<T>(() => undefined)
const STOP: unique symbol = Symbol('stop')

/**
 * A step's result as it is stored and as every replay will see it: the
 * first execution returns the same value as later replays. A result that
 * cannot round-trip (a Date, NaN, a NUL…) is the step's bug: a terminal
 * ValidationError `INVALID_RESULT`, so the step fails once and is not retried.
 */
function storedCopy<T>(v: T, stepId: string): T {
  return decodeValue<T>(encodeValue(v, { subject: `result of step "${stepId}"`, code: 'INVALID_RESULT', status: 500, allowUndefined: true }))
}

function checkName(kind: string, name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 200 || name.includes('#') || name.startsWith('$') || !name.isWellFormed() || name.includes('\0')) {
    throw new ConfigError('INVALID_STEP_NAME', `${kind} name "${String(name)}" must be 1-200 characters of valid Unicode, without NUL or "#" and not starting with "$"`)
  }
}

export class Execution implements WorkflowContext {
  readonly workflowId: string
  readonly workflowName: string
  readonly lease: Lease
  readonly seenSeq: number
  readonly input: unknown
  readonly #host: ExecutionHost
  readonly #retry: ResolvedRetry
  readonly #steps: Map<string, StepRow>
  readonly #counters = new Map<string, number>()
  readonly #abort = new AbortController()
  readonly #deadlineMs: number | undefined
  readonly #dbMsAtClaim: number
  readonly #perfAtClaim = performance.now()
  #inflight = 0
  #suspended = false
  #wakes: (number | null)[] = []
  #stop: StopReason | undefined
  #fatal: unknown
  // Finished steps not yet written: recorded with the run's next write (the
  // next side effect never starts before they are durable), so the last
  // step and the run's completion share one commit.
  #pending: PendingStep[] = []
  // Sleeps this execution is parked on, recorded with the park itself; `at`
  // (performance.now() at the call) keeps the wake time counted from the
  // call even when a parallel branch's step delays the park. An execution
  // that loses its lease before parking records none of them: like a step
  // whose result was not recorded, the sleep starts over on the next owner.
  #sleeps: { step_name: string; ms: number; at: number }[] = []
  #flushChain: Promise<boolean> = Promise.resolve(true)
  #onParked: (() => void) | undefined
  /** Resolves once the run is parked (suspended or stopped) with no step in flight. */
  readonly parked: Promise<void>

  constructor(host: ExecutionHost, row: RunRow, steps: StepRow[], retry: ResolvedRetry) {
    this.#host = host
    this.#retry = retry
    this.workflowId = row.workflow_id
    this.workflowName = row.workflow_name
    this.lease = { id: row.workflow_id, fence: row.fence, owner: host.owner }
    this.seenSeq = row.signal_seq
    this.input = (row.input as { v?: unknown } | null)?.v
    this.#deadlineMs = row.deadline_at?.getTime()
    this.#dbMsAtClaim = row.db_now.getTime()
    this.#steps = new Map(steps.map((s) => [s.step_name, s]))
    this.parked = new Promise((resolve) => (this.#onParked = resolve))
  }

  get db(): Database {
    return this.#host.db
  }

  get signal(): AbortSignal {
    return this.#abort.signal
  }

  get stopReason(): StopReason | undefined {
    return this.#stop
  }

  /** The permanent error that stopped the execution (stop reason `failed`). */
  get fatal(): unknown {
    return this.#fatal
  }

  get suspended(): boolean {
    return this.#suspended
  }

  /** The earliest wake time any parked branch asked for (null: only a signal or child wakes it). */
  get wakeAtMs(): number | null {
    const timed = this.#wakes.filter((w): w is number => w !== null)
    return timed.length > 0 ? Math.min(...timed) : null
  }

  /** The database clock, estimated from the claim's `now()` plus time elapsed here. */
  dbNow(): number {
    return this.#dbMsAtClaim + (performance.now() - this.#perfAtClaim)
  }

  get pastDeadline(): boolean {
    return this.#deadlineMs !== undefined && this.dbNow() >= this.#deadlineMs
  }

  /** Stops the execution: no new step starts; cancel and lost lease also abort `ctx.signal`. */
  stop(reason: StopReason): void {
    if (this.#stop === undefined || this.#stop === 'shutdown') this.#stop = reason
    if (reason === 'cancelled' || reason === 'lease-lost') this.#abort.abort(new Error(`workflow run ${reason}`))
    this.#checkParked()
  }

  #checkParked(): void {
    if ((this.#suspended || this.#stop !== undefined) && this.#inflight === 0) this.#onParked?.()
  }

  #nextId(name: string): string {
    const n = (this.#counters.get(name) ?? 0) + 1
    this.#counters.set(name, n)
    return n === 1 ? name : `${name}#${n}`
  }

  /**
   * Before any side effect: false once the run is parked (the caller then
   * waits forever); records pending steps first; fails the run once it is
   * past its deadline.
   */
  async #gate(): Promise<boolean> {
    if (this.#suspended || this.#stop !== undefined) return false
    if (this.pastDeadline) throw new TimeoutError('WORKFLOW_TIMEOUT', `Workflow run "${this.workflowId}" ran past its timeout`, { workflowId: this.workflowId })
    if (this.#pending.length > 0 && !(await this.flush())) return false
    return !(this.#suspended || this.#stop !== undefined)
  }

  /** Writes pending steps (one statement); false when the write was refused or failed. */
  flush(): Promise<boolean> {
    this.#flushChain = this.#flushChain.then(async (ok) => {
      if (!ok || this.#pending.length === 0) return ok
      const batch = this.#pending.splice(0)
      return (await this.#write('steps', () => insertSteps(this.#host.db, this.lease, batch))) !== STOP
    })
    return this.#flushChain
  }

  /** Hands the pending steps to the write that ends the run (after any flush in progress). */
  async takePending(): Promise<PendingStep[] | undefined> {
    if (!(await this.#flushChain)) return undefined
    return this.#pending.splice(0)
  }

  /** Sleeps not recorded yet, for the statement that parks the run (each with the time left from now). */
  takeSleeps(): PendingSleep[] {
    const now = performance.now()
    return this.#sleeps.splice(0).map((s) => ({ step_name: s.step_name, ms: s.ms - (now - s.at) }))
  }

  #suspend(wakeAtMs: number | null): Promise<never> {
    this.#wakes.push(wakeAtMs)
    return this.#parkHere()
  }

  #parkHere(): Promise<never> {
    this.#suspended = true
    this.#checkParked()
    return never()
  }

  /**
   * Runs one write of this run, counted as in flight so the lease is not
   * given up under it. A database failure stops the execution (never the run:
   * it is recovered once its lease goes stale) and a refused write (lease
   * lost or run cancelled) stops it too; both answer STOP and the caller
   * parks.
   */
  async #write<T>(what: string, fn: () => Promise<T | undefined | false>): Promise<T | typeof STOP> {
    this.#inflight++
    let r: T | undefined | false | typeof STOP
    try {
      r = await fn()
    } catch (e) {
      if (!(e instanceof DatabaseError || e instanceof TransportError)) throw e
      r = STOP
      if (e instanceof DatabaseError && !e.retryable) {
        // A permanent refusal (a value or constraint the database rejects) would fail the same way
        // after every takeover: the run fails with it, once, instead of looping.
        this.#host.logger.error({ err: e, workflowId: this.workflowId, what }, 'workflow write refused permanently; the run fails')
        this.#fatal ??= e
        this.#stop ??= 'failed'
      } else {
        this.#host.logger.error({ err: e, workflowId: this.workflowId, what }, 'workflow write failed; the run is left for recovery')
        this.#stop ??= 'infra'
      }
    } finally {
      this.#inflight--
    }
    if (r === undefined || r === false) {
      this.#host.logger.warn({ workflowId: this.workflowId, fence: this.lease.fence, what }, 'workflow write refused: the run was cancelled or another process owns it now')
      this.stop('lease-lost')
      return STOP
    }
    this.#checkParked()
    return r
  }

  async step<T>(name: string, fn: (signal: AbortSignal) => Promise<T> | T, options?: StepOptions): Promise<T> {
    checkName('Step', name)
    return this.#recorded(name, fn, options)
  }

  async #recorded<T>(stepId0: string, fn: (signal: AbortSignal) => Promise<T> | T, options?: StepOptions): Promise<T> {
    const stepId = this.#nextId(stepId0)
    const rec = this.#steps.get(stepId)
    if (rec) return replay<T>(rec)
    if (!(await this.#gate())) return never()
    const policy = options?.retry ? resolveRetry(options.retry, this.#retry) : this.#retry
    const traced = this.#stepStart('workflow.step', stepId0, stepId)
    let attempt = 0
    let failed: SerializedError | undefined
    this.#inflight++
    try {
      let outcome: { ok: true; value: T } | { ok: false; error: SerializedError }
      for (;;) {
        attempt++
        try {
          outcome = { ok: true, value: storedCopy(await inSpan(traced.span, () => fn(this.signal)), stepId) }
          break
        } catch (e) {
          // An abort (cancel, lost lease) is not the step's failure.
          if (this.signal.aborted) return never()
          if (!isRetryable(e) || attempt >= policy.attempts) {
            outcome = { ok: false, error: serializeError(e) }
            break
          }
          const wait = retryDelay(policy, attempt)
          this.#host.logger.warn({ err: e, workflowId: this.workflowId, stepId, attempt, retryInMs: Math.round(wait) }, 'workflow step failed; retrying')
          await this.#pause(wait)
          if (this.signal.aborted) return never()
        }
      }
      const row: StepRow = {
        step_name: stepId,
        status: outcome.ok ? 'completed' : 'failed',
        result: outcome.ok ? { v: outcome.value } : null,
        error: outcome.ok ? null : outcome.error,
        attempts: attempt,
        wake_at: null,
        created_at: new Date(),
      }
      this.#pending.push({ step_name: stepId, status: outcome.ok ? 'completed' : 'failed', result: row.result, error: row.error, attempts: attempt })
      this.#steps.set(stepId, row)
      if (!outcome.ok) failed = outcome.error
      return replay<T>(row)
    } finally {
      this.#stepEnd(traced, stepId0, attempt, failed)
      this.#inflight--
      this.#checkParked()
    }
  }

  /** A span and a clock for a step that runs now (a replayed step has neither: it does not run). */
  #stepStart(kind: string, name: string, stepId: string): { span: OtelSpan | undefined; t0: number } {
    const attributes = { 'onepipe.workflow.name': this.workflowName, 'onepipe.workflow.id': this.workflowId, 'onepipe.workflow.step': stepId }
    return { span: startSpan(`${kind} ${name}`, { attributes }), t0: performance.now() }
  }

  #stepEnd(s: { span: OtelSpan | undefined; t0: number }, name: string, attempts: number, error: SerializedError | undefined): void {
    // A step cut short by a cancel or a lost lease did not finish: its time would only skew the histogram.
    if (this.signal.aborted) s.span?.setAttribute('onepipe.workflow.step.aborted', true)
    else engineMetrics.workflowStepDuration.with(this.workflowName, name).observe((performance.now() - s.t0) / 1000)
    s.span?.setAttribute('onepipe.workflow.step.attempts', attempts)
    endSpan(s.span, error)
  }

  async transaction<T>(name: string, fn: (tx: Queryable, signal: AbortSignal) => Promise<T>, options?: StepOptions): Promise<T> {
    checkName('Transaction', name)
    const stepId = this.#nextId(name)
    const rec = this.#steps.get(stepId)
    if (rec) return replay<T>(rec)
    // The gate writes earlier finished steps first: a transaction never
    // starts before every step before it is durable, as for any step.
    if (!(await this.#gate())) return never()
    const policy = options?.retry ? resolveRetry(options.retry, this.#retry) : this.#retry
    const db = this.#host.db
    const traced = this.#stepStart('workflow.transaction', name, stepId)
    let attempts = 0
    let failedWith: SerializedError | undefined
    this.#inflight++
    try {
      for (let attempt = 1; ; attempt++) {
        attempts = attempt
        // Kept apart from what the transaction rejects with: Database.transaction maps what
        // it does not know (a plain Error of fn) to a DatabaseError, and fn's own error must
        // be judged (retried or not) as a step's would.
        let thrown: { error: unknown } | undefined
        let rolledBack: 'exists' | 'refused' | undefined
        let error: unknown
        const done = await this.#host.transactionSlot()
        try {
          const value = await db.transaction(async (tx) => {
            if (db.kind === 'postgres') await limitIdleInTransaction(tx, this.#host.staleMs)
            let v: T
            try {
              v = storedCopy(await inSpan(traced.span, () => fn(tx, this.signal)), stepId)
            } catch (e) {
              thrown = { error: e }
              throw e
            }
            const r = await recordTransactionStep(tx, this.lease, { step_name: stepId, status: 'completed', result: { v }, error: null, attempts: attempt })
            if (r !== 'recorded') {
              rolledBack = r
              throw new Error(`workflow transaction "${stepId}" rolled back: ${r}`)
            }
            return v
          })
          const row: StepRow = { step_name: stepId, status: 'completed', result: { v: value }, error: null, attempts: attempt, wake_at: null, created_at: new Date() }
          this.#steps.set(stepId, row)
          return value
        } catch (e) {
          error = thrown ? thrown.error : e
        } finally {
          done()
        }
        if (rolledBack === 'refused') {
          this.#host.logger.warn({ workflowId: this.workflowId, fence: this.lease.fence, stepId }, 'workflow transaction rolled back: the run was cancelled or another process owns it now')
          this.stop('lease-lost')
          return never()
        }
        if (rolledBack === 'exists') {
          const recorded = await this.#recordedStep(stepId)
          if (recorded === STOP) return never()
          return replay<T>(recorded)
        }
        // An abort (cancel, lost lease) is not the step's failure; nothing of the attempt committed.
        if (this.signal.aborted) return never()
        if (!isRetryable(error) || attempt >= policy.attempts) {
          const failed: PendingStep = { step_name: stepId, status: 'failed', result: null, error: serializeError(error), attempts: attempt }
          failedWith = failed.error ?? undefined
          this.#pending.push(failed)
          const row: StepRow = { ...failed, wake_at: null, created_at: new Date() }
          this.#steps.set(stepId, row)
          return replay<T>(row)
        }
        const wait = retryDelay(policy, attempt)
        this.#host.logger.warn({ err: error, workflowId: this.workflowId, stepId, attempt, retryInMs: Math.round(wait) }, 'workflow transaction failed and was rolled back; retrying')
        await this.#pause(wait)
        if (this.signal.aborted) return never()
      }
    } finally {
      this.#stepEnd(traced, name, attempts, failedWith)
      this.#inflight--
      this.#checkParked()
    }
  }

  /** Reads back a step an earlier attempt recorded (its commit was reported failed, yet it happened). */
  async #recordedStep(stepId: string): Promise<StepRow | typeof STOP> {
    const rows = await this.#write(`read ${stepId}`, () => selectSteps(this.#host.db, this.workflowId))
    if (rows === STOP) return STOP
    const row = rows.find((r) => r.step_name === stepId)
    if (!row) throw new Error(`step "${stepId}" of run "${this.workflowId}" was reported recorded but cannot be read`)
    this.#steps.set(stepId, row)
    return row
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms)
      this.signal.addEventListener(
        'abort',
        () => {
          clearTimeout(t)
          resolve()
        },
        { once: true },
      )
    })
  }

  async sleep(duration: Duration): Promise<void> {
    const ms = parseDuration(duration)
    const stepId = this.#nextId('$sleep')
    let wake = (this.#steps.get(stepId)?.result as { v?: number } | null)?.v
    if (wake === undefined) {
      if (!(await this.#gate())) return never()
      if (ms > 0) {
        // Parks at once; the engine records this sleep in the statement that gives the lease up.
        this.#sleeps.push({ step_name: stepId, ms, at: performance.now() })
        return this.#parkHere()
      }
      // Nothing to wait for: recorded now (the step ids of a replay stay the same) and the body goes on.
      const w = await this.#write(`sleep ${stepId}`, () => insertSleep(this.#host.db, this.lease, stepId, ms))
      if (w === STOP) return never()
      wake = w
      this.#steps.set(stepId, { step_name: stepId, status: 'completed', result: { v: wake }, error: null, attempts: 1, wake_at: new Date(wake), created_at: new Date() })
    }
    if (wake <= this.dbNow()) return
    return this.#suspend(wake)
  }

  async sleepUntil(at: Date): Promise<void> {
    if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw new ConfigError('INVALID_DATE', 'ctx.sleepUntil needs a valid Date')
    if (at.getTime() <= this.dbNow()) return
    if (!(await this.#gate())) return never()
    return this.#suspend(at.getTime())
  }

  async waitForSignal<T = unknown>(name: string, options?: { timeout?: Duration }): Promise<T | null> {
    checkName('Signal', name)
    const stepId = this.#nextId(`$signal:${name}`)
    const rec = this.#steps.get(stepId)
    if (rec?.status === 'completed') return (rec.result?.v ?? null) as T | null
    if (!(await this.#gate())) return never()
    const got = await this.#write(`signal ${stepId}`, async () => ({ r: await consumeSignal(this.#host.db, this.lease, stepId, name) }))
    if (got === STOP) return never()
    if (got.r) {
      this.#steps.set(stepId, { step_name: stepId, status: 'completed', result: { v: got.r.data }, error: null, attempts: 1, wake_at: null, created_at: new Date() })
      return (got.r.data ?? null) as T | null
    }
    let deadline: number | null
    if (rec?.status === 'waiting') deadline = rec.wake_at?.getTime() ?? null
    else {
      const timeoutMs = options?.timeout === undefined ? null : parseDuration(options.timeout)
      const w = await this.#write(`wait ${stepId}`, () => insertWaiting(this.#host.db, this.lease, stepId, timeoutMs))
      if (w === STOP) return never()
      deadline = w.wakeAt?.getTime() ?? null
      this.#steps.set(stepId, { step_name: stepId, status: 'waiting', result: null, error: null, attempts: 1, wake_at: w.wakeAt, created_at: new Date() })
    }
    if (deadline !== null && deadline <= this.dbNow()) {
      if ((await this.#write(`timeout ${stepId}`, () => timeoutWaiting(this.#host.db, this.lease, stepId))) === STOP) return never()
      this.#steps.set(stepId, { step_name: stepId, status: 'completed', result: { v: null }, error: null, attempts: 1, wake_at: null, created_at: new Date() })
      return null
    }
    return this.#suspend(deadline)
  }

  async child<CI, CO>(workflow: ChildWorkflow<CI, CO>, input: CI, options?: { workflowId?: string }): Promise<CO> {
    const stepId = this.#nextId('$child')
    const childId = options?.workflowId ?? `${this.workflowId}/${stepId}`
    if (!(await this.#gate())) return never()
    const row = await this.#write(`child ${stepId}`, () => this.#host.startChild(workflow as ChildWorkflow<unknown, unknown>, input, childId, this.workflowId))
    if (row === STOP) return never()
    if (row.status === 'completed') return row.output?.v as CO
    if (row.status === 'failed') throw deserializeError(row.error ?? serializeError(new Error('child failed')))
    if (row.status === 'cancelled') throw new WorkflowCancelledError(row.workflow_id)
    return this.#suspend(null)
  }

  async parallel<T extends readonly unknown[]>(items: { [K in keyof T]: Promise<T[K]> | (() => Promise<T[K]>) }): Promise<T> {
    const started = (items as readonly (Promise<unknown> | (() => Promise<unknown>))[]).map((i) => (typeof i === 'function' ? i() : i))
    return (await Promise.all(started)) as unknown as T
  }

  async emit<T>(flow: Appendable<T>, data: T): Promise<void> {
    const name = (flow as { name?: unknown }).name
    await this.#recorded(typeof name === 'string' ? `$emit:${name}` : '$emit', async () => {
      await flow.append(data)
    })
  }
}

function replay<T>(rec: StepRow): Promise<T> {
  if (rec.status === 'failed') return Promise.reject(deserializeError(rec.error ?? serializeError(new Error('step failed'))))
  return Promise.resolve(rec.result?.v as T)
}
