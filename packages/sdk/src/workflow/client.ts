import { randomUUID } from 'node:crypto'
import { ConfigError, ValidationError, assertDatabase, encodeValue, type Database, type Duration } from '@onepipe/core'
import { STATUSES, awaitRun, cancelRunById, checkRunId, getRun, isWorkflowName, notFound, signalRun, startRun, stepsOf, toInfo } from './runs.js'
import { selectAllRuns, selectRuns } from './sql.js'
import type { ChildWorkflow, RunInfo, RunStatus, StepInfo } from './types.js'
import type { WorkflowHandle } from './workflow.js'

/**
 * Options of a {@link WorkflowClient}.
 *
 * @example
 * ```ts
 * const o: WorkflowClientOptions = { db: Database.create('main').postgres(process.env.DATABASE_URL!).build() }
 * ```
 */
export interface WorkflowClientOptions {
  /** The database the workflows' engines run on (the one their `.db()` or `serve()` uses). */
  db: Database
}

/**
 * Starts, signals, cancels, reads and awaits workflow runs by workflow name,
 * using only the database: for a process that does not have the workflow's
 * definition (an API gateway, a script, another service), like DBOS's
 * `DBOSClient` or Temporal's `WorkflowClient`. The run is executed by any
 * engine on that database whose process has the workflow (`serve({ workflows })`
 * or a `WorkflowEngine`); until one does, it waits as `pending`.
 *
 * The client has no schema: `start` checks the input against the value
 * rule (a value that cannot round-trip is a 400 and nothing is stored), and
 * the executing engine validates it against the workflow's input schema
 * before the body runs (a bad input fails the run with `VALIDATION_FAILED`;
 * its timeout counts from the start, as for any run).
 *
 * @example
 * ```ts
 * import { Database, WorkflowClient } from '@onepipe/sdk'
 * const client = new WorkflowClient({ db: Database.create('main').postgres(process.env.DATABASE_URL!).build() })
 * const run = await client.start<{ orderId: string }, { chargeId: string }>('process-order', { orderId: 'o1' }, { workflowId: 'order-o1' })
 * await client.signal('order-o1', 'review', { approved: true })
 * const { chargeId } = await run.result('1h')       // rethrows the run's failure; WORKFLOW_RESULT_TIMEOUT after 1 h
 * await client.cancel('order-o2')                    // ConflictError WORKFLOW_NOT_RUNNING (409) once it finished
 * ```
 */
export class WorkflowClient {
  readonly db: Database

  constructor(o: WorkflowClientOptions) {
    this.db = assertDatabase(o.db, 'WorkflowClient')
  }

  /**
   * Starts a run of the workflow named `workflow` (or of a built Workflow's
   * name), for any engine that has it. Reusing a `workflowId` answers the
   * existing run when the input is the same (compared as canonical JSON:
   * key order does not matter) with `created: false`, and throws
   * ConflictError `WORKFLOW_ID_CONFLICT` (409) when it is not;
   * `WORKFLOW_ID_IN_USE` (409) when the id belongs to another workflow.
   *
   * @throws ValidationError (400) for an input that cannot round-trip or a bad workflowId; ConfigError for a bad name
   * @example
   * ```ts
   * const run = await client.start('send-invoice', { invoiceId: 'inv-7' }, { workflowId: 'invoice-inv-7' })
   * console.log(run.created, (await run.status()).status) // true 'pending'
   * ```
   */
  async start<I = unknown, O = unknown>(workflow: string | ChildWorkflow<I, O>, input: I, options: { workflowId?: string } = {}): Promise<WorkflowHandle<O>> {
    const name = typeof workflow === 'string' ? workflow : workflow.name
    if (!isWorkflowName(name)) throw new ConfigError('INVALID_WORKFLOW_NAME', `Workflow name "${name}" must be 1-128 letters, digits, ".", "_" or "-" (and not "runs")`)
    const id = checkRunId(options.workflowId ?? randomUUID())
    encodeValue(input, { subject: `workflow "${name}" input`, allowUndefined: true })
    const r = await startRun({ db: this.db, id, name, input, parentId: null, owner: null, timeoutMs: null, checked: false, sameInput: true })
    return this.handle<O>(id, r.created)
  }

  /**
   * A handle for a run by id (no database access until used).
   *
   * @example
   * ```ts
   * const out = await client.handle<{ chargeId: string }>('order-o1').result('5m')
   * ```
   */
  handle<O = unknown>(workflowId: string, created = false): WorkflowHandle<O> {
    return {
      workflowId,
      created,
      status: async () => {
        const r = await this.get<O>(workflowId)
        if (!r) throw notFound(workflowId)
        return r
      },
      result: (timeout) => this.result<O>(workflowId, timeout),
      signal: (name, data) => this.signal(workflowId, name, data),
      cancel: () => this.cancel(workflowId),
    }
  }

  /**
   * One run (of any workflow), or undefined; `owner` and `heartbeatAt` say
   * which instance executes it and when it last renewed its lease.
   *
   * @example
   * ```ts
   * const run = await client.get('order-o1')
   * if (run?.owner) console.log(`${run.owner} runs it, lease renewed at ${run.heartbeatAt?.toISOString()}`)
   * ```
   */
  async get<O = unknown>(workflowId: string): Promise<RunInfo<O> | undefined> {
    return getRun<O>(this.db, workflowId)
  }

  /**
   * Runs newest first, of one workflow (`workflowName`) or of all; at most
   * `limit` (default 50, up to 1000).
   *
   * @example
   * ```ts
   * const failed = await client.list({ workflowName: 'process-order', status: 'failed', limit: 20 })
   * ```
   */
  async list(o: { workflowName?: string; status?: RunStatus; limit?: number; offset?: number } = {}): Promise<RunInfo[]> {
    if (o.status !== undefined && !STATUSES.includes(o.status)) throw new ValidationError('list options', [{ path: 'status', message: `must be one of ${STATUSES.join(', ')}` }])
    const limit = Math.min(o.limit ?? 50, 1000)
    const offset = o.offset ?? 0
    const rows = o.workflowName === undefined ? await selectAllRuns(this.db, o.status, limit, offset) : await selectRuns(this.db, o.workflowName, o.status, limit, offset)
    return rows.map((r) => toInfo(r))
  }

  /**
   * The recorded steps of a run, in the order they were recorded.
   *
   * @example
   * ```ts
   * for (const s of await client.steps('order-o1')) console.log(s.stepId, s.status)
   * ```
   */
  async steps(workflowId: string): Promise<StepInfo[]> {
    return stepsOf(this.db, workflowId)
  }

  /**
   * Waits for a run's output (polling the database, 20 ms backing off to
   * 500 ms). Rethrows its failure; throws WorkflowCancelledError for a
   * cancelled run, NotFoundError for an unknown id and TimeoutError
   * `WORKFLOW_RESULT_TIMEOUT` after `timeout` (the run goes on).
   *
   * @example
   * ```ts
   * const out = await client.result<{ chargeId: string }>('order-o1', '10m')
   * ```
   */
  async result<O = unknown>(workflowId: string, timeout?: Duration): Promise<O> {
    return awaitRun<O>(this.db, workflowId, { name: undefined, timeout })
  }

  /**
   * Queues a signal for a live run; its next `waitForSignal(name)` gets it.
   *
   * @throws NotFoundError (404) for an unknown run; ConflictError `WORKFLOW_NOT_RUNNING` (409) for a finished one
   * @example
   * ```ts
   * await client.signal('order-o1', 'review', { approved: true })
   * ```
   */
  async signal(workflowId: string, name: string, data?: unknown): Promise<void> {
    await signalRun(this.db, workflowId, name, data)
  }

  /**
   * Cancels a live run and its children (no further step starts).
   *
   * @throws NotFoundError (404) for an unknown run; ConflictError `WORKFLOW_NOT_RUNNING` (409) for a completed, failed or cancelled one
   * @example
   * ```ts
   * await client.cancel('order-o1')
   * ```
   */
  async cancel(workflowId: string): Promise<void> {
    await cancelRunById(this.db, workflowId)
  }
}
