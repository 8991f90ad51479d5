import { randomUUID } from 'node:crypto'
import {
  assertDatabase,
  decodeValue,
  encodeValue,
  ConfigError,
  isStandardSchema,
  parseDuration,
  registerPrimitive,
  validate,
  type Component,
  type Database,
  type Duration,
  type Infer,
  stderrLogger,
  type RuntimeContext,
  type StandardSchemaV1,
} from '@onepipe/core'
import type { Hono } from 'hono'
import type { Execution } from './context.js'
import { WorkflowEngine, type RunnableWorkflow } from './engine.js'
import { mountWorkflowRoutes } from './http.js'
import { STATUSES, awaitRun, cancelRunById,
  retryRunById, checkRunId, getRun, isWorkflowName, notFound, signalRun, startRun, stepsOf, toInfo } from './runs.js'
import { selectRuns, type RunRow } from './sql.js'
import { resolveRetry, type ResolvedRetry, type RetryPolicy, type RunInfo, type RunStatus, type StepInfo, type WorkflowContext } from './types.js'

type Body<I, O> = (ctx: WorkflowContext, input: I) => Promise<O>

interface Config<I, O> {
  name: string
  input: StandardSchemaV1 | undefined
  output: StandardSchemaV1 | undefined
  db: Database | undefined
  timeoutMs: number | undefined
  retry: ResolvedRetry
  body: Body<I, O> | undefined
}

/**
 * A started run: ask its status, wait for its result, signal or cancel it.
 *
 * @example
 * ```ts
 * const run: WorkflowHandle<{ chargeId: string }> = await processOrder.start(input, { workflowId: 'order-o1' })
 * await run.signal('review', { approved: true })
 * ```
 */
export interface WorkflowHandle<O> {
  readonly workflowId: string
  /** False when `start` found an existing run with this id (start is idempotent). */
  readonly created: boolean
  /** The run now; throws NotFoundError `WORKFLOW_RUN_NOT_FOUND` when there is none. */
  status(): Promise<RunInfo<O>>
  /** Waits for the output; rethrows the run's failure; throws `WORKFLOW_RESULT_TIMEOUT` after `timeout`. */
  result(timeout?: Duration): Promise<O>
  /** Queues a signal; ConflictError `WORKFLOW_NOT_RUNNING` (409) once the run finished. */
  signal(name: string, data?: unknown): Promise<void>
  /** Cancels the run; ConflictError `WORKFLOW_NOT_RUNNING` (409) when it already finished. */
  cancel(): Promise<void>
}


/** Engines shared by every workflow attached on one database in this process. */
const sharedEngines = new Map<Database, WorkflowEngine>()

/**
 * A durable workflow: a function whose steps are recorded in PostgreSQL (or
 * embedded PGlite) so that it survives crashes, restarts and deploys.
 *
 * Guarantees (with one `WorkflowEngine` per process on a shared database):
 * - a step's result is recorded once and returned on replay without running
 *   the step again; steps called in a loop get stable ids from their order;
 * - `ctx.sleep` stores an absolute wake time (database clock); a sleeping
 *   run holds no process and wakes at that time after any restart;
 * - one owner at a time: a lease with a fencing token, renewed every 10 s
 *   (also during long steps), taken over within `staleAfter` + `poll` (31 s)
 *   of the owner's last heartbeat; every write checks the token in the same
 *   statement, so a fenced-off owner's step result is refused;
 * - `ctx.transaction` steps happen exactly once: their writes and their
 *   recorded result commit in one transaction, under the lease;
 * - `cancel()` stops the run before its next step; the status stays `cancelled`;
 * - retryable step errors are retried with backoff + jitter; a terminal error
 *   (`TerminalError`, or retries used up) is recorded, fails the run, and
 *   replay reports the same failure without running the step again;
 * - signals are queued; each is consumed by exactly one `waitForSignal`;
 * - input is validated at `start` (nothing is written when it is bad), output
 *   before the run completes.
 *
 * The boundary, honestly: `ctx.transaction` is exactly-once for writes to
 * the workflow's database; `ctx.step` is at-least-once at a crash. A plain
 * step's side effect and the row recording its result cannot commit
 * atomically (the side effect is outside the database). If the process dies
 * (or loses its lease) after a step's side effect but before its result is
 * recorded, that one step runs again when the run is recovered. Every
 * completed step never runs again. Make steps that move money idempotent
 * with a key derived from `ctx.workflowId` and the step, and the whole run
 * is exactly-once in effect.
 *
 * @example
 * ```ts
 * const processOrder = Workflow.create('process-order')
 *   .input(z.object({ orderId: z.string(), amount: z.number() }))
 *   .timeout('30m')
 *   .retry({ attempts: 5, backoff: 'exponential', delay: '1s' })
 *   .define(async (ctx, input) => {
 *     const charge = await ctx.step('charge', () => payments.charge(input.orderId, input.amount))
 *     await ctx.sleep('5m')
 *     await ctx.step('ship', () => shipping.create(input.orderId))
 *     return { chargeId: charge.id }
 *   })
 *   .build()
 * serve({ workflows: [processOrder] })
 * const run = await processOrder.start({ orderId: 'o1', amount: 99 }, { workflowId: 'order-o1' })
 * console.log(await run.result('10m'))
 * ```
 */
export class Workflow<I = unknown, O = unknown> implements Component, RunnableWorkflow {
  readonly kind = 'workflow'
  readonly name: string
  readonly retryPolicy: ResolvedRetry
  /** @internal type carrier for `ctx.child` */
  declare readonly __types?: { input: I; output: O }
  readonly #c: Config<I, O>
  #engine: WorkflowEngine | undefined
  #attachedDb: Database | undefined

  constructor(c: Config<I, O>) {
    this.#c = c
    this.name = c.name
    this.retryPolicy = c.retry
  }

  /**
   * Starts a builder.
   *
   * @example
   * ```ts
   * const wf = Workflow.create('welcome-email').define(async (ctx) => ctx.step('send', send)).build()
   * ```
   */
  static create(name: string): WorkflowBuilder<unknown, unknown> {
    return new WorkflowBuilder(name)
  }

  /** The database runs are stored in: `.db()`, else the one `serve()` attached. */
  /** The input and output schemas given to the builder (for docs and the dashboard's forms). */
  get schemas(): { input: StandardSchemaV1 | undefined; output: StandardSchemaV1 | undefined } {
    return { input: this.#c.input, output: this.#c.output }
  }

  get db(): Database {
    const db = this.#c.db ?? this.#attachedDb ?? this.#engine?.db
    if (!db) throw new ConfigError('WORKFLOW_NO_DB', `Workflow "${this.name}" has no database; call .db(db) or run it under serve()`)
    return db
  }

  /** @internal RunnableWorkflow: a run still going this long after it started fails. */
  get timeoutMs(): number | undefined {
    return this.#c.timeoutMs
  }

  /**
   * Starts a run, or returns the existing one when `workflowId` was used
   * before with the same input (idempotent). Bad input throws a
   * ValidationError (400) and writes nothing; an id already used with
   * another input throws ConflictError `WORKFLOW_ID_CONFLICT` (409), and
   * one used by another workflow `WORKFLOW_ID_IN_USE` (409). With an engine
   * in this process the run starts here at once; otherwise any engine on
   * the database picks it up.
   *
   * @example
   * ```ts
   * const run = await processOrder.start({ orderId: 'o1', amount: 99 }, { workflowId: 'order-o1' })
   * await processOrder.start({ orderId: 'o1', amount: 5 }, { workflowId: 'order-o1' }) // ConflictError WORKFLOW_ID_CONFLICT
   * ```
   */
  async start(input: I, options: { workflowId?: string } = {}): Promise<WorkflowHandle<O>> {
    const id = checkRunId(options.workflowId ?? randomUUID())
    const value = await this.validateInput(input)
    const r = await this.#insert(id, value, null, true)
    return this.handle(id, r.created)
  }

  /** Inserts (or finds) a run; executes a new one here at once when this process's engine has room. */
  async #insert(id: string, value: unknown, parentId: string | null, sameInput: boolean): Promise<{ row: RunRow; created: boolean }> {
    const engine = this.#engine
    const local = engine?.acceptsLocal(this.name) === true && engine.db === this.db
    const r = await startRun({ db: this.db, id, name: this.name, input: value, parentId, owner: local ? engine.owner : null, timeoutMs: this.#c.timeoutMs ?? null, checked: true, sameInput })
    if (r.created && local) engine.execute(r.row, [])
    return r
  }

  /** @internal RunnableWorkflow: the input as the schema parses it, checked against the value rule. */
  async validateInput(input: unknown): Promise<unknown> {
    const value = this.#c.input ? await validate(this.#c.input, input, `workflow "${this.name}" input`) : input
    encodeValue(value, { subject: `workflow "${this.name}" input`, allowUndefined: true })
    return value
  }

  /** @internal RunnableWorkflow */
  async startChildRun(input: unknown, childId: string, parentId: string): Promise<RunRow> {
    checkRunId(childId)
    const value = await this.validateInput(input)
    // A replayed parent finds its child by id; the child id is the parent's own, so no input check.
    return (await this.#insert(childId, value, parentId, false)).row
  }

  /** @internal RunnableWorkflow */
  runBody(ctx: Execution, input: unknown): Promise<unknown> {
    if (!this.#c.body) throw new ConfigError('WORKFLOW_NO_BODY', `Workflow "${this.name}" has no body`)
    return this.#c.body(ctx, input as I)
  }

  /** @internal RunnableWorkflow */
  async checkOutput(value: unknown): Promise<unknown> {
    const out = this.#c.output ? await validate(this.#c.output, value, `workflow "${this.name}" output`) : value
    // The body's own result: a value that cannot round-trip fails the run (once), it is not the caller's input.
    // Returned as stored, so a caller in this process reads the same value as any other reader.
    return decodeValue(encodeValue(out, { subject: `workflow "${this.name}" output`, code: 'INVALID_RESULT', status: 500, allowUndefined: true }))
  }

  /** @internal RunnableWorkflow */
  bindEngine(engine: WorkflowEngine | undefined): void {
    this.#engine = engine
  }

  /**
   * A handle for a run by id (no database access until used).
   *
   * @example
   * ```ts
   * await processOrder.handle('order-o1').signal('approved', { by: 'ana' })
   * ```
   */
  handle(workflowId: string, created = false): WorkflowHandle<O> {
    return {
      workflowId,
      created,
      status: async () => {
        const r = await this.get(workflowId)
        if (!r) throw notFound(workflowId)
        return r
      },
      result: (timeout) => this.result(workflowId, timeout),
      signal: (name, data) => this.signal(workflowId, name, data),
      cancel: () => this.cancel(workflowId),
    }
  }

  /**
   * One run of this workflow, or undefined.
   *
   * @example
   * ```ts
   * const run = await processOrder.get('order-o1')
   * ```
   */
  async get(workflowId: string): Promise<RunInfo<O> | undefined> {
    return getRun<O>(this.db, workflowId, this.name)
  }

  /**
   * Runs of this workflow, newest first.
   *
   * @example
   * ```ts
   * const failed = await processOrder.list({ status: 'failed', limit: 20 })
   * const alices = await processOrder.list({ input: { customer: 'alice' } }) // inputs containing this (jsonb @>)
   * ```
   */
  async list(o: { status?: RunStatus; limit?: number; offset?: number; input?: unknown } = {}): Promise<RunInfo<O>[]> {
    if (o.status !== undefined && !STATUSES.includes(o.status)) throw new ConfigError('INVALID_STATUS', `status must be one of ${STATUSES.join(', ')}`)
    const rows = await selectRuns(this.db, this.name, o.status, Math.min(o.limit ?? 50, 1000), o.offset ?? 0, o.input)
    return rows.map((r) => toInfo<O>(r))
  }

  /**
   * The recorded steps of a run, in the order they were recorded.
   *
   * @example
   * ```ts
   * for (const s of await processOrder.steps('order-o1')) console.log(s.stepId, s.status)
   * ```
   */
  async steps(workflowId: string): Promise<StepInfo[]> {
    return stepsOf(this.db, workflowId)
  }

  /**
   * Waits for a run's output. Rethrows its failure (same code and message on
   * every call); throws WorkflowCancelledError for a cancelled run.
   *
   * @example
   * ```ts
   * const out = await processOrder.result('order-o1', '1m')
   * ```
   */
  async result(workflowId: string, timeout?: Duration): Promise<O> {
    return awaitRun<O>(this.db, workflowId, { name: this.name, timeout, local: (id) => this.#engine?.localRun(id) })
  }

  /**
   * Queues a signal for a live run; the run's next `waitForSignal(name)` gets it.
   *
   * @example
   * ```ts
   * await processOrder.signal('order-o1', 'approved', { by: 'ana' })
   * ```
   */
  async signal(workflowId: string, name: string, data?: unknown): Promise<void> {
    await signalRun(this.db, workflowId, name, data)
  }

  /**
   * Cancels a run and its children: no further step starts, and the status
   * stays `cancelled` even if a step in flight finishes later. A run that
   * already finished (completed, failed or cancelled) is left as it is and
   * the call throws ConflictError `WORKFLOW_NOT_RUNNING` (409); an unknown
   * id throws NotFoundError `WORKFLOW_RUN_NOT_FOUND` (404).
   *
   * @example
   * ```ts
   * await processOrder.cancel('order-o1')
   * ```
   */
  async cancel(workflowId: string): Promise<void> {
    await cancelRunById(this.db, workflowId)
  }

  /**
   * Runs a failed or cancelled run again from where it stopped: completed
   * steps come back from the log, the step that failed runs again (like
   * DBOS's resume). Throws ConflictError `WORKFLOW_NOT_FAILED` (409) for a
   * live or completed run, NotFoundError (404) for an unknown id.
   *
   * @example
   * ```ts
   * await processOrder.retry('order-o1')
   * ```
   */
  async retry(workflowId: string): Promise<void> {
    await retryRunById(this.db, workflowId)
  }

  /**
   * Runs due and stale runs of this workflow in this process now (starting
   * an engine here if none is attached). `serve()` does this at start-up on
   * its own; call it in scripts that run workflows without `serve()`.
   *
   * @example
   * ```ts
   * await processOrder.recover()
   * ```
   */
  async recover(): Promise<void> {
    if (!this.#engine) {
      const engine = sharedEngine(this.db, undefined)
      engine.register(this)
    }
    await this.#engine?.start()
  }

  /** Starts (or joins) this process's engine on the workflow's database (called by `serve()`). */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#attachedDb = this.#c.db ?? rt.db
    const engine = sharedEngine(this.#attachedDb, rt)
    engine.register(this)
    await engine.start()
  }

  /** Stops claiming this workflow's runs; the last workflow to detach stops the engine (called by `serve()`). */
  async detach(): Promise<void> {
    const engine = this.#engine
    if (!engine) return
    if (engine.unregister(this) === 0 && sharedEngines.get(engine.db) === engine) {
      sharedEngines.delete(engine.db)
      await engine.stop()
    }
  }

  /** Mounts the workflow routes under `/__onepipe/workflows` (called by `serve()`). */
  routes(app: unknown, rt?: RuntimeContext): void {
    mountWorkflowRoutes(app as Hono, this as unknown as Workflow<unknown, unknown>, rt?.logger ?? stderrLogger)
  }
}

function sharedEngine(db: Database, rt: RuntimeContext | undefined): WorkflowEngine {
  let e = sharedEngines.get(db)
  if (!e) {
    e = new WorkflowEngine({ db, ...(rt ? { instanceId: rt.instanceId, logger: rt.logger } : {}) })
    sharedEngines.set(db, e)
  }
  return e
}

/**
 * Fluent configuration for a {@link Workflow}.
 *
 * @example
 * ```ts
 * Workflow.create('refund').input(z.object({ id: z.string() })).define(async (ctx, i) => ctx.step('refund', () => refund(i.id))).build()
 * ```
 */
export class WorkflowBuilder<I, O> {
  #c: Config<I, O>

  constructor(name: string) {
    if (!isWorkflowName(name)) throw new ConfigError('INVALID_WORKFLOW_NAME', `Workflow name "${name}" must be 1-128 letters, digits, ".", "_" or "-" (and not "runs")`)
    this.#c = { name, input: undefined, output: undefined, db: undefined, timeoutMs: undefined, retry: resolveRetry(undefined), body: undefined }
  }

  /** Validates input at `start` (Standard Schema: Zod v4, Valibot…). */
  input<S extends StandardSchemaV1>(schema: S): WorkflowBuilder<Infer<S>, O> {
    if (!isStandardSchema(schema)) throw new ConfigError('INVALID_SCHEMA', `Workflow "${this.#c.name}" input must be a Standard Schema (e.g. a Zod schema)`)
    return this.#with({ input: schema }) as unknown as WorkflowBuilder<Infer<S>, O>
  }

  /** Validates the body's return value before the run completes. */
  output<S extends StandardSchemaV1>(schema: S): WorkflowBuilder<I, Infer<S>> {
    if (!isStandardSchema(schema)) throw new ConfigError('INVALID_SCHEMA', `Workflow "${this.#c.name}" output must be a Standard Schema (e.g. a Zod schema)`)
    return this.#with({ output: schema }) as unknown as WorkflowBuilder<I, Infer<S>>
  }

  /** Where runs are stored (default: the database `serve()` is given). */
  db(db: Database): this {
    this.#c.db = assertDatabase(db, `Workflow "${this.#c.name}"`)
    return this
  }

  /** A run still going this long after it started fails with `WORKFLOW_TIMEOUT`. */
  timeout(d: Duration): this {
    this.#c.timeoutMs = parseDuration(d)
    return this
  }

  /** The default retry policy of every step (a step's own `{ retry }` overrides it). */
  retry(p: RetryPolicy): this {
    this.#c.retry = resolveRetry(p)
    return this
  }

  /** The workflow body. */
  define<R>(body: (ctx: WorkflowContext, input: I) => Promise<R>): WorkflowBuilder<I, unknown extends O ? R : O> {
    this.#c.body = body as unknown as Body<I, O>
    return this as unknown as WorkflowBuilder<I, unknown extends O ? R : O>
  }

  #with(patch: Partial<Config<I, O>>): this {
    Object.assign(this.#c, patch)
    return this
  }

  /** Builds the workflow and records it in the manifest. */
  build(): Workflow<I, O> {
    if (!this.#c.body) throw new ConfigError('WORKFLOW_NO_BODY', `Workflow "${this.#c.name}" needs a body: call .define(async (ctx, input) => …) before .build()`)
    const wf = new Workflow<I, O>({ ...this.#c })
    registerPrimitive({
      primitive: 'workflow',
      name: wf.name,
      infrastructure: ['postgresql'],
      config: { timeoutMs: this.#c.timeoutMs ?? null, retry: this.#c.retry, hasInputSchema: !!this.#c.input, hasOutputSchema: !!this.#c.output },
    })
    return wf
  }
}
