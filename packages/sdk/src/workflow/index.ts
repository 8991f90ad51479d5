/**
 * Workflow: durable execution on PostgreSQL (or embedded PGlite, same SQL).
 *
 * A run's steps are recorded in `_onepipe_workflow_steps` as they finish;
 * after a crash any process replays the body and gets recorded results back
 * instead of running completed steps again. Sleeps and signal waits store
 * their wake time in the database and give the process up. One process owns
 * a run at a time (lease + fencing token checked by every write).
 *
 * Exactly-once boundary: `ctx.transaction` is exactly-once for writes to
 * the workflow's database (its writes and its recorded result commit in one
 * transaction). `ctx.step` is at-least-once at a crash: its side effect
 * happens outside the database, so if a process dies (or is fenced off)
 * after the effect but before the step's result row commits, that single
 * step runs once more on recovery. At most one step per run is ever in that
 * window (the next step never starts before the previous result is
 * durable), and steps whose result was recorded never run again. Give steps
 * that must not repeat an idempotency key (e.g. `${ctx.workflowId}:charge`).
 * See docs/workflows.md.
 *
 * @example
 * ```ts
 * import { Workflow, WorkflowEngine } from '@onepipe/sdk'
 * const wf = Workflow.create('hello').db(db).define(async (ctx) => ctx.step('greet', () => 'hi')).build()
 * const engine = new WorkflowEngine({ db, workflows: [wf] })
 * await engine.start()
 * console.log(await (await wf.start(undefined)).result())
 * ```
 */
export { Workflow, WorkflowBuilder, type WorkflowHandle } from './workflow.js'
export { WorkflowEngine, type WorkflowEngineOptions } from './engine.js'
export { WorkflowClient, type WorkflowClientOptions } from './client.js'
export {
  WorkflowCancelledError,
  type Appendable,
  type ChildWorkflow,
  type RetryPolicy,
  type RunInfo,
  type RunStatus,
  type StepInfo,
  type StepOptions,
  type WorkflowContext,
} from './types.js'
