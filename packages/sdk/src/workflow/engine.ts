// The executor: claims runnable runs for this process, runs their bodies,
// keeps their leases alive, gives sleeping runs back to the database, and
// takes over runs whose owner went silent.
import {
  ConfigError,
  DatabaseError,
  TimeoutError,
  endSpan,
  engineMetrics,
  inSpan,
  newInstanceId,
  parseDuration,
  serializeError,
  startSpan,
  stderrLogger,
  traceContext,
  type Database,
  type Duration,
  type Logger,
  type SerializedError,
} from '@onepipe/core'
import { Execution, type ExecutionHost } from './context.js'
import { adoptInput, claimDue, claimStale, finishRun, heartbeat, parkRun, releaseRun, retryTransient, selectSteps, type RunRow, type StepRow } from './sql.js'
import type { ChildWorkflow, ResolvedRetry, RunStatus } from './types.js'

/** How a run ended in this process (or that it was handed back to the database). */
export type Settled = { final: true; status: RunStatus; output: unknown; error: SerializedError | undefined } | { final: false }

interface Slot {
  exec: Execution | undefined
  done: Promise<Settled>
}

/** What the engine needs of a built workflow. */
export interface RunnableWorkflow {
  readonly name: string
  readonly retryPolicy: ResolvedRetry
  /** A run still going this long (ms) after it started fails with `WORKFLOW_TIMEOUT`. */
  readonly timeoutMs: number | undefined
  /** The input as the workflow's schema parses it; throws ValidationError when it does not fit. */
  validateInput(input: unknown): Promise<unknown>
  runBody(ctx: Execution, input: unknown): Promise<unknown>
  checkOutput(value: unknown): Promise<unknown>
  /** Starts `input` as a child of `parentId` (idempotent by `childId`). */
  startChildRun(input: unknown, childId: string, parentId: string): Promise<RunRow>
  bindEngine(engine: WorkflowEngine | undefined): void
}

/**
 * Options of a {@link WorkflowEngine}. Intervals are configurable so tests can
 * run fast; under `serve()` they come from `ONEPIPE_WORKFLOW_HEARTBEAT`,
 * `ONEPIPE_WORKFLOW_STALE_AFTER`, `ONEPIPE_WORKFLOW_POLL` and
 * `ONEPIPE_WORKFLOW_CONCURRENCY` when set.
 *
 * @example
 * ```ts
 * const o: WorkflowEngineOptions = { db, workflows: [wf], heartbeat: '2s', staleAfter: '6s', concurrency: 50 }
 * ```
 */
export interface WorkflowEngineOptions {
  db: Database
  /** Names this process in every lease (default: host, pid and a random part). */
  instanceId?: string
  logger?: Logger
  /** How often the owner renews the leases it holds (default 10s). */
  heartbeat?: Duration
  /**
   * A run whose heartbeat is older than this is taken over (default 30s).
   * Every engine looks for such runs every `poll`, so a run whose owner
   * died is taken over at most `staleAfter` + `poll` after the owner's last
   * heartbeat (31 s by default), by an engine with room for it.
   */
  staleAfter?: Duration
  /** How often due runs, and runs whose owner went silent, are looked for besides notifications (default 1s). */
  poll?: Duration
  /** Runs executed at once in this process (default 100). */
  concurrency?: number
  /** How long `stop()` waits for in-flight steps to be recorded (default 30s). */
  shutdownTimeout?: Duration
  workflows?: RunnableWorkflow[]
}

/**
 * Executes workflow runs in this process. `serve({ workflows })` starts one
 * per database; use it directly to run workflows without `serve()` (scripts,
 * tests, workers). Any number of processes may run engines on one database:
 * each run has one owner at a time (lease + fencing token), sleeping runs
 * hold no process, and a dead owner's runs are taken over after `staleAfter`.
 *
 * @example
 * ```ts
 * const engine = new WorkflowEngine({ db, workflows: [processOrder] })
 * await engine.start()              // recovers stale runs, then claims due ones
 * await processOrder.start({ orderId: 'o1' }, { workflowId: 'order-o1' })
 * await engine.stop()               // waits for in-flight steps, hands runs back
 * ```
 */
export class WorkflowEngine implements ExecutionHost {
  readonly db: Database
  readonly owner: string
  readonly logger: Logger
  readonly channel: string
  readonly heartbeatMs: number
  readonly staleMs: number
  readonly pollMs: number
  readonly concurrency: number
  readonly #shutdownMs: number
  readonly #workflows = new Map<string, RunnableWorkflow>()
  readonly #running = new Map<string, Slot>()
  #state: 'idle' | 'starting' | 'started' | 'stopping' = 'idle'
  #startP: Promise<void> | undefined
  #timers: NodeJS.Timeout[] = []
  // Apart from the other timers: leases are renewed until the last in-flight step is recorded at stop().
  #heartbeatTimer: NodeJS.Timeout | undefined
  #scanning = false
  // ctx.transaction holds a pooled connection from BEGIN to COMMIT; two are always left for
  // heartbeats, claims and step writes, so many transactions at once cannot starve the leases.
  readonly #txLimit: number
  #txOpen = 0
  readonly #txQueue: (() => void)[] = []
  #wakeTimer: NodeJS.Timeout | undefined
  #wakeAt = Infinity
  #unlisten: (() => Promise<void>) | undefined
  #claiming: Promise<void> | undefined
  #claimAgain = false
  // Set when a claim pass stopped because this process was full: only then
  // does a finishing run trigger another pass (no query per run otherwise).
  #backlog = false

  constructor(o: WorkflowEngineOptions) {
    this.db = o.db
    this.owner = o.instanceId ?? newInstanceId()
    this.logger = (o.logger ?? stderrLogger).child({ component: 'workflow-engine' })
    this.channel = o.db.channel('onepipe_workflows')
    const env = process.env
    this.heartbeatMs = parseDuration(o.heartbeat ?? env.ONEPIPE_WORKFLOW_HEARTBEAT ?? '10s')
    this.staleMs = parseDuration(o.staleAfter ?? env.ONEPIPE_WORKFLOW_STALE_AFTER ?? '30s')
    this.pollMs = parseDuration(o.poll ?? env.ONEPIPE_WORKFLOW_POLL ?? '1s')
    this.#shutdownMs = parseDuration(o.shutdownTimeout ?? '30s')
    this.concurrency = o.concurrency ?? (env.ONEPIPE_WORKFLOW_CONCURRENCY ? Number(env.ONEPIPE_WORKFLOW_CONCURRENCY) : 100)
    if (this.staleMs <= this.heartbeatMs) throw new ConfigError('INVALID_LEASE', `staleAfter (${this.staleMs}ms) must be longer than heartbeat (${this.heartbeatMs}ms)`)
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new ConfigError('INVALID_CONCURRENCY', `concurrency must be a positive integer, got ${this.concurrency}`)
    this.#txLimit = o.db.kind === 'postgres' ? Math.max(1, o.db.options.max - 2) : 1
    for (const w of o.workflows ?? []) this.register(w)
  }

  /** @internal ExecutionHost: room for one more open `ctx.transaction`. */
  async transactionSlot(): Promise<() => void> {
    if (this.#txOpen >= this.#txLimit) await new Promise<void>((resolve) => this.#txQueue.push(resolve))
    else this.#txOpen++
    let given = false
    return () => {
      if (given) return
      given = true
      // Handed straight to the next waiter (the count stays), or given back.
      const next = this.#txQueue.shift()
      if (next) next()
      else this.#txOpen--
    }
  }

  /**
   * Adds a workflow this engine executes.
   *
   * @example
   * ```ts
   * engine.register(sendInvoice)
   * ```
   */
  register(workflow: RunnableWorkflow): this {
    const had = this.#workflows.get(workflow.name)
    if (had && had !== workflow) throw new ConfigError('DUPLICATE_WORKFLOW', `Two workflows are named "${workflow.name}"; names must be unique per database`)
    this.#workflows.set(workflow.name, workflow)
    workflow.bindEngine(this)
    if (this.#state === 'started') this.#kick()
    return this
  }

  /** Stops claiming runs of `workflow` here (runs in flight go on). Answers how many workflows remain. */
  unregister(workflow: RunnableWorkflow): number {
    if (this.#workflows.get(workflow.name) === workflow) {
      this.#workflows.delete(workflow.name)
      workflow.bindEngine(undefined)
    }
    return this.#workflows.size
  }

  get running(): number {
    return this.#running.size
  }

  /** Whether a run of `name` started here now would be executed here at once. */
  acceptsLocal(name: string): boolean {
    return this.#state === 'started' && this.#workflows.has(name) && this.#running.size < this.concurrency
  }

  /**
   * Listens for notices, takes over stale runs, and starts claiming due runs.
   *
   * @example
   * ```ts
   * await engine.start()
   * ```
   */
  start(): Promise<void> {
    this.#startP ??= this.#start()
    return this.#startP
  }

  async #start(): Promise<void> {
    this.#state = 'starting'
    await this.db.ready()
    // NOTIFYs sent while the listening connection was down are gone: look for due runs and
    // cancelled ones (the heartbeat answers which runs are still ours) at once.
    this.#unlisten = await this.db.listen('onepipe_workflows', (p) => this.#onNotice(p), {
      onReconnect: () => {
        this.logger.warn({}, 'workflow notifications reconnected; looking for due and cancelled runs now')
        this.#kick()
        void this.#heartbeat()
      },
    })
    this.#state = 'started'
    const every = (ms: number, fn: () => Promise<void>) => {
      const t = setInterval(() => void fn(), ms)
      this.#timers.push(t)
    }
    every(this.pollMs, async () => this.#kick())
    // The stale scan runs every poll, not every staleAfter/3: a run whose owner died is taken over
    // at most staleAfter + poll after its last heartbeat. The scan is one indexed statement that
    // finds nothing on a healthy system.
    every(this.pollMs, () => this.#takeOverStale())
    this.#heartbeatTimer = setInterval(() => void this.#heartbeat(), this.heartbeatMs)
    await this.#takeOverStale()
    this.#kick()
  }

  /**
   * Stops claiming, lets in-flight steps be recorded, and hands every run
   * this process holds back to the database (due at once), so another
   * instance continues it without waiting for the lease to go stale.
   *
   * @example
   * ```ts
   * process.on('SIGTERM', () => void engine.stop())
   * ```
   */
  async stop(): Promise<void> {
    if (this.#state === 'idle') return
    await this.#startP?.catch(() => undefined)
    this.#state = 'stopping'
    for (const t of this.#timers) clearInterval(t)
    this.#timers = []
    if (this.#wakeTimer) clearTimeout(this.#wakeTimer)
    await this.#claiming
    for (const r of this.#running.values()) r.exec?.stop('shutdown')
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all([...this.#running.values()].map((r) => r.done)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#shutdownMs))),
    ])
    clearTimeout(timer)
    clearInterval(this.#heartbeatTimer)
    this.#heartbeatTimer = undefined
    if (this.#running.size > 0) this.logger.warn({ runs: [...this.#running.keys()] }, 'workflow steps still running at shutdown; their runs are recovered once their leases go stale')
    const u = this.#unlisten
    this.#unlisten = undefined
    await u?.()
    this.#state = 'idle'
    this.#startP = undefined
  }

  #onNotice(payload: string): void {
    if (payload.startsWith('due:')) {
      if (this.#workflows.has(payload.slice(4))) this.#kick()
    } else if (payload.startsWith('cancel:')) {
      this.#running.get(payload.slice(7))?.exec?.stop('cancelled')
    }
  }

  /** Claims due runs until the engine is full or none are left (one pass at a time). */
  #kick(): void {
    if (this.#state !== 'started') return
    if (this.#claiming) {
      this.#claimAgain = true
      return
    }
    this.#claiming = this.#claimPass()
      .catch((e: unknown) => this.logger.error({ err: e }, 'claiming workflow runs failed; retrying at the next poll'))
      .finally(() => {
        this.#claiming = undefined
        if (this.#claimAgain) {
          this.#claimAgain = false
          this.#kick()
        }
      })
  }

  async #claimPass(): Promise<void> {
    for (;;) {
      const room = this.concurrency - this.#running.size
      const names = [...this.#workflows.keys()]
      this.#backlog = room <= 0
      if (room <= 0 || names.length === 0 || this.#state !== 'started') return
      const limit = Math.min(room, 64)
      const rows = await claimDue(this.db, names, this.owner, limit)
      for (const r of rows) this.execute(r)
      if (rows.length < limit) return
    }
  }

  async #takeOverStale(): Promise<void> {
    const room = this.concurrency - this.#running.size
    const names = [...this.#workflows.keys()]
    // One scan at a time: a slow one (a loaded database) is not stacked on by the next tick.
    if (room <= 0 || names.length === 0 || this.#state !== 'started' || this.#scanning) return
    this.#scanning = true
    try {
      const rows = await claimStale(this.db, names, this.owner, this.staleMs, room)
      for (const r of rows) {
        this.logger.warn({ workflowId: r.workflow_id, fence: r.fence }, 'took over a workflow run whose owner stopped renewing its lease')
        this.execute(r)
      }
    } catch (e) {
      this.logger.error({ err: e }, 'taking over stale workflow runs failed; retrying later')
    } finally {
      this.#scanning = false
    }
  }

  async #heartbeat(): Promise<void> {
    // A run stopped for shutdown keeps its lease while its last step finishes (stop() waits for it).
    const held = [...this.#running.values()].flatMap((r) => (r.exec && (r.exec.stopReason === undefined || r.exec.stopReason === 'shutdown') ? [r.exec] : []))
    if (held.length === 0) return
    try {
      const kept = new Set(await heartbeat(this.db, this.owner, held.map((e) => e.workflowId), held.map((e) => e.lease.fence)))
      for (const e of held) {
        if (!kept.has(e.workflowId)) {
          this.logger.warn({ workflowId: e.workflowId, fence: e.lease.fence }, 'lost the lease of a workflow run; stopping it here')
          e.stop('lease-lost')
        }
      }
    } catch (e) {
      this.logger.error({ err: e }, 'renewing workflow leases failed')
    }
  }

  /** Whether the run is executing in this process; resolves when that execution ends. */
  localRun(id: string): Promise<Settled> | undefined {
    return this.#running.get(id)?.done
  }

  /** Executes a run this process just claimed (`row.owner` is this process). */
  execute(row: RunRow, steps?: StepRow[]): void {
    const slot: Slot = { exec: undefined, done: Promise.resolve({ final: false }) }
    this.#running.set(row.workflow_id, slot)
    const done = this.#traced(row, () => this.#execute(row, slot, steps))
    slot.done = done
    void done.finally(() => {
      this.#running.delete(row.workflow_id)
      if (this.#backlog) this.#kick()
    })
  }

  /**
   * One execution of a run as a span continuing the trace that started the
   * run (from any process), under a context of its own: nothing of the
   * caller that claimed it (an HTTP request's id) leaks into the run's logs.
   */
  async #traced(row: RunRow, run: () => Promise<Settled>): Promise<Settled> {
    const parent = traceContext(row.traceparent)
    const attributes = { 'onepipe.workflow.name': row.workflow_name, 'onepipe.workflow.id': row.workflow_id, 'onepipe.workflow.fence': Number(row.fence) }
    const span = startSpan(`workflow.run ${row.workflow_name}`, { kind: 'consumer', parent, attributes })
    let s: Settled
    try {
      s = await inSpan(span, run, parent)
    } catch (e) {
      endSpan(span, e)
      throw e
    }
    if (s.final) engineMetrics.workflowRuns.with(row.workflow_name, s.status).inc()
    span?.setAttribute('onepipe.workflow.status', s.final ? s.status : 'parked')
    endSpan(span, s.final && s.status === 'failed' ? (s.error ?? 'failed') : undefined)
    return s
  }

  async #execute(claimed: RunRow, slot: Slot, known?: StepRow[]): Promise<Settled> {
    let row = claimed
    const wf = this.#workflows.get(row.workflow_name)
    const lease = { id: row.workflow_id, fence: row.fence, owner: this.owner }
    if (!wf || this.#state !== 'started') {
      await releaseRun(this.db, lease, 0, row.signal_seq).catch((e: unknown) => this.logger.error({ err: e, workflowId: row.workflow_id }, 'handing a workflow run back failed'))
      return { final: false }
    }
    try {
      if (!row.input_checked) {
        const adopted = await this.#adopt(wf, row)
        if ('final' in adopted) return adopted
        row = adopted
      }
      // A run claimed for the first time (fence 1) has no recorded steps.
      const steps = known ?? (row.fence > 1 ? await selectSteps(this.db, row.workflow_id) : [])
      const exec = new Execution(this, row, steps, wf.retryPolicy)
      slot.exec = exec
      return await this.#drive(wf, exec)
    } catch (e) {
      this.logger.error({ err: e, workflowId: row.workflow_id }, 'workflow execution failed in the engine; the run is recovered once its lease goes stale')
      return { final: false }
    }
  }

  /**
   * A run a WorkflowClient started (without the schema): validates its
   * input here and stores the parsed value and the deadline; a bad input
   * fails the run with the validation error before the body runs.
   */
  async #adopt(wf: RunnableWorkflow, row: RunRow): Promise<RunRow | Settled> {
    const lease = { id: row.workflow_id, fence: row.fence, owner: this.owner }
    let input: unknown
    try {
      input = await wf.validateInput((row.input as { v?: unknown } | null)?.v)
    } catch (e) {
      const error = serializeError(e)
      const ok = await retryTransient(() => finishRun(this.db, lease, { status: 'failed', output: undefined, error, channel: this.channel, steps: [] }))
      return ok ? { final: true, status: 'failed', output: undefined, error } : { final: false }
    }
    const adopted = await retryTransient(() => adoptInput(this.db, lease, input, wf.timeoutMs ?? null))
    return adopted ?? { final: false }
  }

  async #drive(wf: RunnableWorkflow, exec: Execution): Promise<Settled> {
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown } | 'parked'
    if (exec.pastDeadline) outcome = { ok: false, error: new TimeoutError('WORKFLOW_TIMEOUT', `Workflow run "${exec.workflowId}" ran past its timeout`, { workflowId: exec.workflowId }) }
    else {
      const body = (async () => wf.runBody(exec, exec.input))().then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      )
      outcome = await Promise.race([body, exec.parked.then(() => 'parked' as const)])
    }
    // A body that ended always tries to finish: if this process lost the
    // run meanwhile, the fenced statement refuses it.
    if (outcome === 'parked') return this.#park(exec)
    let status: 'completed' | 'failed' = 'failed'
    let output: unknown
    let error: SerializedError | undefined
    if (outcome.ok) {
      try {
        output = await wf.checkOutput(outcome.value)
        status = 'completed'
      } catch (e) {
        error = serializeError(e)
      }
    } else error = serializeError(outcome.error)
    const steps = await exec.takePending()
    if (!steps) return { final: false }
    let ok: boolean | undefined
    try {
      ok = await retryTransient(() => finishRun(this.db, exec.lease, { status, output, error: error ?? null, channel: this.channel, steps }))
    } catch (e) {
      if (!(e instanceof DatabaseError) || e.retryable) throw e
      // The database refuses this ending for good: record the refusal as the run's failure, once.
      return this.#fail(exec, e)
    }
    if (!ok) {
      this.logger.warn({ workflowId: exec.workflowId, fence: exec.lease.fence }, 'workflow result refused: the run was cancelled or taken over')
      return { final: false }
    }
    return { final: true, status, output, error }
  }

  /** Ends a run as failed with `cause`, dropping steps not recorded yet (they may be what the database refuses). */
  async #fail(exec: Execution, cause: unknown): Promise<Settled> {
    const error = serializeError(cause)
    const ok = await retryTransient(() => finishRun(this.db, exec.lease, { status: 'failed', output: undefined, error, channel: this.channel, steps: [] }))
    if (!ok) return { final: false }
    return { final: true, status: 'failed', output: undefined, error }
  }

  async #park(exec: Execution): Promise<Settled> {
    const reason = exec.stopReason
    if (reason === 'failed') {
      await exec.takePending()
      return this.#fail(exec, exec.fatal)
    }
    if (reason === 'lease-lost' || reason === 'infra' || reason === 'cancelled') {
      // Steps that finished here are still offered: the fenced write refuses
      // them if the run was cancelled or another process owns it now (and
      // records them if not).
      await exec.flush()
      return { final: false }
    }
    const wakeAtMs = reason === 'shutdown' ? 0 : exec.wakeAtMs
    const steps = await exec.takePending()
    if (!steps) return { final: false }
    // Finished steps, new sleeps and the release share one commit (like a run's last step and its completion).
    let r: Awaited<ReturnType<typeof parkRun>>
    try {
      r = await parkRun(this.db, exec.lease, { steps, sleeps: exec.takeSleeps(), wakeAtMs, seenSeq: exec.seenSeq })
    } catch (e) {
      if (!(e instanceof DatabaseError) || e.retryable) throw e
      return this.#fail(exec, e)
    }
    if (r) this.#armWake(r.wakeAtMs - exec.dbNow())
    else this.logger.warn({ workflowId: exec.workflowId, fence: exec.lease.fence }, 'workflow park refused: the run was cancelled or another process owns it now')
    return { final: false }
  }

  /** One timer per engine, for the nearest wake-up this process knows of; polling covers the rest. */
  #armWake(inMs: number): void {
    if (!Number.isFinite(inMs) || this.#state !== 'started') return
    const at = Date.now() + Math.max(0, inMs)
    if (at >= this.#wakeAt && this.#wakeTimer) return
    if (inMs >= this.pollMs) return
    if (this.#wakeTimer) clearTimeout(this.#wakeTimer)
    this.#wakeAt = at
    this.#wakeTimer = setTimeout(() => {
      this.#wakeTimer = undefined
      this.#wakeAt = Infinity
      this.#kick()
    }, Math.max(0, inMs) + 5)
  }

  /** @internal ExecutionHost: starts a child run through its workflow. */
  startChild(workflow: ChildWorkflow<unknown, unknown>, input: unknown, childId: string, parentId: string): Promise<RunRow> {
    return (workflow as unknown as RunnableWorkflow).startChildRun(input, childId, parentId)
  }
}
