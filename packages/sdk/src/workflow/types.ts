import { ConflictError, resolveRetry as coreResolveRetry, retryDelay, type Duration, type Database, type Queryable, type ResolvedRetry, type RetryPolicy, type SerializedError } from '@onepipe/core'

/**
 * Where a run is in its life. A sleeping or waiting run is `running` with a `wakeAt`.
 *
 * @example
 * ```ts
 * const failed = await wf.list({ status: 'failed' satisfies RunStatus })
 * ```
 */
export type RunStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled'

/** The statuses a run never leaves. */
export const FINAL_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'cancelled']

/**
 * What `status()`, `get(id)` and `list()` answer about one run.
 *
 * @example
 * ```ts
 * const info: RunInfo | undefined = await wf.get('order-o1')
 * if (info?.wakeAt) console.log('sleeping until', info.wakeAt)
 * ```
 */
export interface RunInfo<O = unknown> {
  workflowId: string
  workflowName: string
  status: RunStatus
  input: unknown
  output: O | undefined
  error: SerializedError | undefined
  parentId: string | undefined
  /**
   * The instance executing the run now (`instanceId` of its engine, under
   * `serve()` the app's instance id); undefined while nobody holds it
   * (pending, sleeping, waiting, finished).
   */
  owner: string | undefined
  /**
   * When the owner last renewed its lease (database clock). Another engine
   * takes the run over once this is older than its `staleAfter`.
   */
  heartbeatAt: Date | undefined
  /** When a sleeping or waiting run is due again (database time); undefined while it runs. */
  wakeAt: Date | undefined
  /** Past this the run fails with `WORKFLOW_TIMEOUT`. */
  deadlineAt: Date | undefined
  createdAt: Date
  updatedAt: Date
  completedAt: Date | undefined
}

/**
 * One recorded step of a run (`GET /__onepipe/workflows/runs/:id`).
 *
 * @example
 * ```ts
 * for (const s of await wf.steps('order-o1')) console.log(s.stepId, s.status, s.attempts)
 * ```
 */
export interface StepInfo {
  /** Stable id within the run: the step name plus its call order (`charge`, `charge#2`…). */
  stepId: string
  status: 'completed' | 'failed' | 'waiting'
  result: unknown
  error: SerializedError | undefined
  attempts: number
  createdAt: Date
}

/** Workflows retry a failing step 3 times by default, from 1 s up to 1 min apart. */
export const DEFAULT_RETRY: ResolvedRetry = { attempts: 3, backoff: 'exponential', delayMs: 1000, maxDelayMs: 60_000 }

/** {@link coreResolveRetry} with the workflow defaults. */
export function resolveRetry(p: RetryPolicy | undefined, base: ResolvedRetry = DEFAULT_RETRY): ResolvedRetry {
  return coreResolveRetry(p, base)
}

export { retryDelay, type RetryPolicy, type ResolvedRetry }

/**
 * Anything `ctx.emit` can append to: a Flow, or any object with `append(data)`.
 *
 * @example
 * ```ts
 * const audit: Appendable<{ msg: string }> = { append: async (e) => console.log(e.msg) }
 * ```
 */
export interface Appendable<T = unknown> {
  append(data: T): Promise<unknown>
}

/**
 * Options of one step.
 *
 * @example
 * ```ts
 * const opts: StepOptions = { retry: { attempts: 2 } }
 * ```
 */
export interface StepOptions {
  retry?: RetryPolicy
}

/**
 * What a workflow body gets. Every method that touches the outside world
 * goes through a recorded step, so replay after a crash returns the recorded
 * results instead of doing it again.
 *
 * @example
 * ```ts
 * Workflow.create('w').define(async (ctx: WorkflowContext) => ctx.step('hello', () => 'hi'))
 * ```
 */
export interface WorkflowContext {
  /** This run's id. */
  readonly workflowId: string
  /** The workflow's database. */
  readonly db: Database
  /** Aborted when this process stops executing the run (cancel, lost lease, shutdown). */
  readonly signal: AbortSignal
  /**
   * Runs `fn` once and records its result; on replay returns the recorded
   * result (or rethrows the recorded failure) without running it. Results
   * must be JSON values: the first run returns the same JSON copy replay will.
   *
   * @example
   * ```ts
   * const charge = await ctx.step('charge', () => stripe.charge(input.amount), { retry: { attempts: 5 } })
   * ```
   */
  step<T>(name: string, fn: (signal: AbortSignal) => Promise<T> | T, options?: StepOptions): Promise<T>
  /**
   * A database step that happens exactly once: `fn` runs inside one
   * transaction on the workflow's database, and the step's result is
   * recorded in that same transaction, under a check that this process
   * still owns the run. Its writes and its result commit together or not
   * at all: a process killed (or fenced off) before the commit leaves
   * nothing behind, and after the commit the step is never run again
   * (replay returns the recorded result without calling `fn`).
   *
   * Use only `tx` inside `fn` (its statements are the transaction's);
   * keep network calls out (a transaction idle for longer than the
   * engine's `staleAfter` is ended by PostgreSQL). The result follows the
   * value rule like a step's (one that cannot round-trip is a terminal
   * `INVALID_RESULT`, and the writes are rolled back). A retryable error
   * (serialization failure, deadlock, lost connection: `isRetryable`)
   * rolls back and retries with the step's retry policy; any other error
   * rolls back and fails the step, and replay rethrows it.
   *
   * @example
   * ```ts
   * const orderId = await ctx.transaction('record-order', async (tx) => {
   *   const [o] = await tx.query<{ id: number }>('INSERT INTO orders (customer, total) VALUES ($1, $2) RETURNING id', [input.customer, input.total])
   *   await tx.execute('UPDATE stock SET qty = qty - $1 WHERE sku = $2', [input.qty, input.sku])
   *   return o!.id
   * })
   * ```
   */
  transaction<T>(name: string, fn: (tx: Queryable, signal: AbortSignal) => Promise<T>, options?: StepOptions): Promise<T>
  /**
   * Sleeps durably: the wake time is stored (database clock) and the run
   * gives up its process until then; a restart does not start the sleep over.
   *
   * @example
   * ```ts
   * await ctx.sleep('5m')
   * ```
   */
  sleep(duration: Duration): Promise<void>
  /**
   * Sleeps until an absolute time.
   *
   * @example
   * ```ts
   * await ctx.sleepUntil(new Date(input.sendAt))
   * ```
   */
  sleepUntil(at: Date): Promise<void>
  /**
   * Waits for the next signal `name` sent to this run (queued: signals sent
   * earlier are delivered in order, each to exactly one wait). Resolves with
   * its data, or with `null` when `timeout` passes first.
   *
   * @example
   * ```ts
   * const approval = await ctx.waitForSignal<{ ok: boolean }>('approval', { timeout: '1d' })
   * ```
   */
  waitForSignal<T = unknown>(name: string, options?: { timeout?: Duration }): Promise<T | null>
  /**
   * Starts `workflow` as a child run (idempotent on replay) and waits for its
   * output; a failed child rethrows its error here.
   *
   * @example
   * ```ts
   * const label = await ctx.child(shipping, { orderId: input.id })
   * ```
   */
  child<CI, CO>(workflow: ChildWorkflow<CI, CO>, input: CI, options?: { workflowId?: string }): Promise<CO>
  /**
   * Runs several steps (thunks or already-started promises) at once and
   * resolves with all results in order.
   *
   * @example
   * ```ts
   * const [a, b] = await ctx.parallel([() => ctx.step('a', fa), () => ctx.step('b', fb)])
   * ```
   */
  parallel<T extends readonly unknown[]>(items: { [K in keyof T]: Promise<T[K]> | (() => Promise<T[K]>) }): Promise<T>
  /**
   * Appends `data` to a flow as a recorded step, so replay does not append again.
   *
   * @example
   * ```ts
   * await ctx.emit(orderEvents, { type: 'paid', id: input.id })
   * ```
   */
  emit<T>(flow: Appendable<T>, data: T): Promise<void>
}

/**
 * What `ctx.child` needs of a workflow (any built Workflow).
 *
 * @example
 * ```ts
 * const label = await ctx.child(shipping satisfies ChildWorkflow<{ id: string }, string>, { id })
 * ```
 */
export interface ChildWorkflow<I, O> {
  readonly name: string
  /** @internal */
  readonly __types?: { input: I; output: O }
}

/**
 * A run was cancelled; `result()` of a cancelled run throws it.
 *
 * @example
 * ```ts
 * try { await run.result() } catch (e) { if (e instanceof WorkflowCancelledError) console.log('cancelled') }
 * ```
 */
export class WorkflowCancelledError extends ConflictError {
  constructor(workflowId: string) {
    super('WORKFLOW_CANCELLED', `Workflow run "${workflowId}" was cancelled`, { workflowId })
  }
}
