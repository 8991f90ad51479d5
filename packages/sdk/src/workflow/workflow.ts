import { randomUUID } from 'node:crypto'
import {
  assertDatabase,
  encodeValue,
  ConfigError,
  ConflictError,
  NotFoundError,
  TimeoutError,
  ValidationError,
  deserializeError,
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
import { WorkflowEngine, type RunnableWorkflow, type Settled } from './engine.js'
import { mountWorkflowRoutes } from './http.js'
import { cancelRun, insertRun, insertSignal, retryTransient, selectRun, selectRuns, selectSteps, type RunRow } from './sql.js'
import {
  FINAL_STATUSES,
  WorkflowCancelledError,
  resolveRetry,
  type ResolvedRetry,
  type RetryPolicy,
  type RunInfo,
  type RunStatus,
  type StepInfo,
  type WorkflowContext,
} from './types.js'

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
  status(): Promise<RunInfo<O>>
  /** Waits for the output; rethrows the run's failure; throws `WORKFLOW_RESULT_TIMEOUT` after `timeout`. */
  result(timeout?: Duration): Promise<O>
  signal(name: string, data?: unknown): Promise<void>
  cancel(): Promise<void>
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
const STATUSES: readonly RunStatus[] = ['pending', 'running', 'completed', 'failed', 'cancelled']

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
 *   (also during long steps), taken over after 30 s of silence; every write
 *   checks the token in the same statement, so a fenced-off owner's step
 *   result is refused;
 * - `cancel()` stops the run before its next step; the status stays `cancelled`;
 * - retryable step errors are retried with backoff + jitter; a terminal error
 *   (`TerminalError`, or retries used up) is recorded, fails the run, and
 *   replay reports the same failure without running the step again;
 * - signals are queued; each is consumed by exactly one `waitForSignal`;
 * - input is validated at `start` (nothing is written when it is bad), output
 *   before the run completes.
 *
 * The boundary, honestly: a step's side effect and the row recording its
 * result cannot commit atomically (the side effect is outside the database).
 * If the process dies (or loses its lease) after a step's side effect but
 * before its result is recorded, that one step runs again when the run is
 * recovered. Every completed step never runs again. Make steps that move
 * money idempotent with a key derived from `ctx.workflowId` and the step,
 * and the whole run is exactly-once in effect.
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
  get db(): Database {
    const db = this.#c.db ?? this.#attachedDb ?? this.#engine?.db
    if (!db) throw new ConfigError('WORKFLOW_NO_DB', `Workflow "${this.name}" has no database; call .db(db) or run it under serve()`)
    return db
  }

  get #channel(): string {
    return this.db.channel('onepipe_workflows')
  }

  /**
   * Starts a run, or returns the existing one when `workflowId` was used
   * before (idempotent). Bad input throws a ValidationError and writes
   * nothing. With an engine in this process the run starts here at once;
   * otherwise any engine on the database picks it up.
   *
   * @example
   * ```ts
   * const run = await processOrder.start({ orderId: 'o1', amount: 99 }, { workflowId: 'order-o1' })
   * ```
   */
  async start(input: I, options: { workflowId?: string } = {}): Promise<WorkflowHandle<O>> {
    const id = checkRunId(options.workflowId ?? randomUUID())
    const value = await this.#checkInput(input)
    const engine = this.#engine
    const local = engine?.acceptsLocal(this.name) === true && engine.db === this.db
    const r = await this.#insert(id, value, null, local ? engine.owner : null)
    if (r.row.workflow_name !== this.name) throw new ConflictError('WORKFLOW_ID_IN_USE', `Run id "${id}" belongs to workflow "${r.row.workflow_name}"; use another id`)
    if (r.created && local) engine.execute(r.row, [])
    return this.handle(id, r.created)
  }

  async #insert(id: string, value: unknown, parentId: string | null, owner: string | null): Promise<{ row: RunRow; created: boolean }> {
    const r = await insertRun(this.db, { id, name: this.name, input: value, parentId, owner, timeoutMs: this.#c.timeoutMs ?? null, channel: this.#channel })
    if (r) return r
    // Inserted concurrently by another process: it is there now.
    const row = await selectRun(this.db, id)
    if (!row) throw new ConflictError('WORKFLOW_START_RACE', `Run "${id}" could not be started or found; try again`)
    return { row, created: false }
  }

  async #checkInput(input: I): Promise<unknown> {
    const value = this.#c.input ? await validate(this.#c.input, input, `workflow "${this.name}" input`) : input
    encodeValue(value, { subject: `workflow "${this.name}" input`, allowUndefined: true })
    return value
  }

  /** @internal RunnableWorkflow */
  async startChildRun(input: unknown, childId: string, parentId: string): Promise<RunRow> {
    checkRunId(childId)
    const value = await this.#checkInput(input as I)
    const engine = this.#engine
    const local = engine?.acceptsLocal(this.name) === true && engine.db === this.db
    const r = await this.#insert(childId, value, parentId, local ? engine.owner : null)
    if (r.created && local) engine.execute(r.row, [])
    return r.row
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
    encodeValue(out, { subject: `workflow "${this.name}" output`, code: 'INVALID_RESULT', status: 500, allowUndefined: true })
    return out
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
    const row = await selectRun(this.db, workflowId)
    return row && row.workflow_name === this.name ? toInfo<O>(row) : undefined
  }

  /**
   * Runs of this workflow, newest first.
   *
   * @example
   * ```ts
   * const failed = await processOrder.list({ status: 'failed', limit: 20 })
   * ```
   */
  async list(o: { status?: RunStatus; limit?: number; offset?: number } = {}): Promise<RunInfo<O>[]> {
    if (o.status !== undefined && !STATUSES.includes(o.status)) throw new ConfigError('INVALID_STATUS', `status must be one of ${STATUSES.join(', ')}`)
    const rows = await selectRuns(this.db, this.name, o.status, Math.min(o.limit ?? 50, 1000), o.offset ?? 0)
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
    return (await selectSteps(this.db, workflowId)).map((s) => ({
      stepId: s.step_name,
      status: s.status,
      result: s.result?.v,
      error: s.error ?? undefined,
      attempts: s.attempts,
      createdAt: s.created_at,
    }))
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
    const until = timeout === undefined ? Infinity : Date.now() + parseDuration(timeout)
    let pause = 20
    for (;;) {
      const local = this.#engine?.localRun(workflowId)
      const settled: Settled | 'timeout' = local ? await beforeDeadline(local, until) : await this.#settledInDb(workflowId)
      if (settled === 'timeout') break
      if (settled.final) return outcome<O>(workflowId, settled.status, settled.output, settled.error)
      if (!local) {
        if (Date.now() >= until) break
        await new Promise((r) => setTimeout(r, Math.min(pause, Math.max(0, until - Date.now()))))
        pause = Math.min(pause * 2, 500)
      }
    }
    throw new TimeoutError('WORKFLOW_RESULT_TIMEOUT', `Run "${workflowId}" of workflow "${this.name}" has not finished yet; it keeps running, ask again later`, { workflowId })
  }

  async #settledInDb(workflowId: string): Promise<Settled> {
    const row = await selectRun(this.db, workflowId)
    if (!row || row.workflow_name !== this.name) throw notFound(workflowId)
    if (!FINAL_STATUSES.includes(row.status)) return { final: false }
    return { final: true, status: row.status, output: row.output?.v, error: row.error ?? undefined }
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
    encodeValue(data, { subject: `data of signal "${name}"`, allowUndefined: true })
    const seq = await insertSignal(this.db, workflowId, name, data ?? null, this.#channel)
    if (seq !== undefined) return
    const row = await selectRun(this.db, workflowId)
    if (!row) throw notFound(workflowId)
    throw new ConflictError('WORKFLOW_NOT_RUNNING', `Run "${workflowId}" is ${row.status}; it takes no more signals`, { status: row.status })
  }

  /**
   * Cancels a run and its children: no further step starts, and the status
   * stays `cancelled` even if a step in flight finishes later. Cancelling a
   * finished run changes nothing.
   *
   * @example
   * ```ts
   * await processOrder.cancel('order-o1')
   * ```
   */
  async cancel(workflowId: string): Promise<void> {
    const ids = await retryTransient(() => cancelRun(this.db, workflowId, this.#channel))
    if (ids.length > 0) return
    if (!(await selectRun(this.db, workflowId))) throw notFound(workflowId)
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

function checkRunId(id: string): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > 256) throw new ValidationError('workflowId', [{ path: 'workflowId', message: 'must be a string of 1-256 characters' }])
  return id
}

function notFound(id: string): NotFoundError {
  return new NotFoundError('WORKFLOW_RUN_NOT_FOUND', `No workflow run "${id}"`, { workflowId: id })
}

async function beforeDeadline(p: Promise<Settled>, until: number): Promise<Settled | 'timeout'> {
  if (until === Infinity) return p
  let t: NodeJS.Timeout | undefined
  const r = await Promise.race([p, new Promise<'timeout'>((resolve) => (t = setTimeout(() => resolve('timeout'), Math.max(0, until - Date.now()))))])
  clearTimeout(t)
  return r
}

function outcome<O>(id: string, status: RunStatus, output: unknown, error: RunInfo['error']): O {
  if (status === 'completed') return output as O
  if (status === 'cancelled') throw new WorkflowCancelledError(id)
  throw deserializeError(error ?? { name: 'Error', code: 'WORKFLOW_FAILED', message: `Run "${id}" failed`, status: 500, retryable: false })
}

/** Maps a stored run row to what users see. */
export function toInfo<O>(r: RunRow): RunInfo<O> {
  return {
    workflowId: r.workflow_id,
    workflowName: r.workflow_name,
    status: r.status,
    input: (r.input as { v?: unknown } | null)?.v,
    output: r.output?.v as O | undefined,
    error: r.error ?? undefined,
    parentId: r.parent_id ?? undefined,
    wakeAt: r.owner === null && !FINAL_STATUSES.includes(r.status) && r.wake_at instanceof Date && Number.isFinite(r.wake_at.getTime()) ? r.wake_at : undefined,
    deadlineAt: r.deadline_at ?? undefined,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    completedAt: r.completed_at ?? undefined,
  }
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
    if (!NAME_RE.test(name) || name === 'runs') throw new ConfigError('INVALID_WORKFLOW_NAME', `Workflow name "${name}" must be 1-128 letters, digits, ".", "_" or "-" (and not "runs")`)
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
