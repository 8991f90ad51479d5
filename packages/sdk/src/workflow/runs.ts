// What a Workflow and a WorkflowClient share: everything about a run that
// needs only the database (start, read, wait, signal, cancel), so a process
// without the workflow's body can do all of it.
import {
  ConflictError,
  NotFoundError,
  TimeoutError,
  checkText,
  currentTraceparent,
  deserializeError,
  encodeValue,
  engineMetrics,
  parseDuration,
  withSpan,
  type Database,
  type Duration,
} from '@onepipe/core'
import type { Settled } from './engine.js'
import { cancelRun, insertRun, insertSignal, retryRun, retryTransient, selectRun, selectSteps, type RunRow, type StepRow } from './sql.js'
import { FINAL_STATUSES, WorkflowCancelledError, type RunInfo, type RunStatus, type StepInfo } from './types.js'

/** The statuses `list({ status })` accepts. */
export const STATUSES: readonly RunStatus[] = ['pending', 'running', 'completed', 'failed', 'cancelled']

/** The NOTIFY channel executors listen on, in the database's schema. */
export function runChannel(db: Database): string {
  return db.channel('onepipe_workflows')
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

/** 1-128 letters, digits, ".", "_" or "-", and not "runs" (a path segment of the HTTP routes). */
export function isWorkflowName(name: string): boolean {
  return typeof name === 'string' && NAME_RE.test(name) && name !== 'runs'
}

export function checkRunId(id: string): string {
  return checkText(id, { subject: 'workflowId', path: 'workflowId', max: 256 })
}

export function notFound(id: string): NotFoundError {
  return new NotFoundError('WORKFLOW_RUN_NOT_FOUND', `No workflow run "${id}"`, { workflowId: id })
}

/**
 * JSON with object keys sorted (and `undefined` properties left out, as
 * JSON does), so two equal inputs compare equal whatever their key order
 * and whatever order jsonb gave the stored one back in.
 */
export function canonicalJson(v: unknown): string {
  if (v === undefined) return 'undefined'
  if (v === null || typeof v !== 'object') return JSON.stringify(v)
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`
  const o = v as Record<string, unknown>
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`
}

export interface StartRun {
  db: Database
  id: string
  name: string
  /** Already validated (or, with `checked: false`, only checked against the value rule). */
  input: unknown
  parentId: string | null
  /** This process when it executes the run at once; null leaves it for any executor. */
  owner: string | null
  timeoutMs: number | null
  /** False for a run started without the workflow's schema: its executor validates the input first. */
  checked: boolean
  /** Refuse an existing run with another input (`WORKFLOW_ID_CONFLICT`), as a top-level start does. */
  sameInput: boolean
}

/**
 * Inserts a run, or finds the existing one with this id. An existing run of
 * another workflow is `WORKFLOW_ID_IN_USE`; with `sameInput`, one started
 * with another input is `WORKFLOW_ID_CONFLICT` (both 409).
 */
export async function startRun(a: StartRun): Promise<{ row: RunRow; created: boolean }> {
  checkRunId(a.id)
  const attributes = { 'onepipe.workflow.name': a.name, 'onepipe.workflow.id': a.id, ...(a.parentId === null ? {} : { 'onepipe.workflow.parent_id': a.parentId }) }
  // The run keeps this span's context: its executions, here or in another process, continue the trace.
  return withSpan(`workflow.start ${a.name}`, { kind: 'producer', attributes }, async (span) => {
    const r = await insertOrFind(a, currentTraceparent())
    span?.setAttribute('onepipe.workflow.created', r.created)
    if (r.created) engineMetrics.workflowRuns.with(a.name, 'started').inc()
    return r
  })
}

async function insertOrFind(a: StartRun, traceparent: string | null): Promise<{ row: RunRow; created: boolean }> {
  let r = await insertRun(a.db, { id: a.id, name: a.name, input: a.input, parentId: a.parentId, owner: a.owner, timeoutMs: a.timeoutMs, channel: runChannel(a.db), checked: a.checked, traceparent })
  if (!r) {
    // Inserted concurrently by another process: it is there now.
    const row = await selectRun(a.db, a.id)
    if (!row) throw new ConflictError('WORKFLOW_START_RACE', `Run "${a.id}" could not be started or found; try again`)
    r = { row, created: false }
  }
  if (r.row.workflow_name !== a.name) throw new ConflictError('WORKFLOW_ID_IN_USE', `Run id "${a.id}" belongs to workflow "${r.row.workflow_name}"; use another id`, { workflowId: a.id, workflowName: r.row.workflow_name })
  if (!r.created && a.sameInput && canonicalJson((r.row.input as { v?: unknown } | null)?.v) !== canonicalJson(a.input)) {
    throw new ConflictError('WORKFLOW_ID_CONFLICT', `Run "${a.id}" of workflow "${a.name}" was started with another input; use a new workflowId for new input`, { workflowId: a.id, workflowName: a.name })
  }
  return r
}

/** Maps a stored run row to what users see. */
export function toInfo<O>(r: RunRow): RunInfo<O> {
  const owned = r.owner !== null && !FINAL_STATUSES.includes(r.status)
  return {
    workflowId: r.workflow_id,
    workflowName: r.workflow_name,
    status: r.status,
    input: (r.input as { v?: unknown } | null)?.v,
    output: r.output?.v as O | undefined,
    error: r.error ?? undefined,
    parentId: r.parent_id ?? undefined,
    owner: owned ? (r.owner ?? undefined) : undefined,
    heartbeatAt: owned ? (r.heartbeat_at ?? undefined) : undefined,
    wakeAt: r.owner === null && !FINAL_STATUSES.includes(r.status) && r.wake_at instanceof Date && Number.isFinite(r.wake_at.getTime()) ? r.wake_at : undefined,
    deadlineAt: r.deadline_at ?? undefined,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    completedAt: r.completed_at ?? undefined,
  }
}

export function toStepInfo(s: StepRow): StepInfo {
  return { stepId: s.step_name, status: s.status, result: s.result?.v, error: s.error ?? undefined, attempts: s.attempts, createdAt: s.created_at }
}

/** A run by id; `name` (when given) must match, else it reads as absent. */
export async function getRun<O>(db: Database, id: string, name?: string): Promise<RunInfo<O> | undefined> {
  checkRunId(id)
  const row = await selectRun(db, id)
  return row && (name === undefined || row.workflow_name === name) ? toInfo<O>(row) : undefined
}

export async function stepsOf(db: Database, id: string): Promise<StepInfo[]> {
  checkRunId(id)
  return (await selectSteps(db, id)).map(toStepInfo)
}

/** Queues a signal for a live run: 404 for no run, 409 for a finished one. */
export async function signalRun(db: Database, id: string, name: string, data: unknown): Promise<void> {
  checkRunId(id)
  checkText(name, { subject: 'signal name', path: 'signal', max: 200 })
  encodeValue(data, { subject: `data of signal "${name}"`, allowUndefined: true })
  const seq = await insertSignal(db, id, name, data ?? null, runChannel(db))
  if (seq !== undefined) return
  const row = await selectRun(db, id)
  if (!row) throw notFound(id)
  throw new ConflictError('WORKFLOW_NOT_RUNNING', `Run "${id}" is ${row.status}; it takes no more signals`, { workflowId: id, status: row.status })
}

/** Cancels a live run and its live descendants: 404 for no run, 409 for a finished one. */
export async function cancelRunById(db: Database, id: string): Promise<void> {
  checkRunId(id)
  const runs = await retryTransient(() => cancelRun(db, id, runChannel(db)))
  for (const r of runs) engineMetrics.workflowRuns.with(r.workflow_name, 'cancelled').inc()
  if (runs.length > 0) return
  const row = await selectRun(db, id)
  if (!row) throw notFound(id)
  throw new ConflictError('WORKFLOW_NOT_RUNNING', `Run "${id}" is ${row.status}; only a pending or running run can be cancelled`, { workflowId: id, status: row.status })
}

/** Makes a failed or cancelled run due again (see `retryRun`): 404 for no run, 409 for a live or completed one. */
export async function retryRunById(db: Database, id: string): Promise<void> {
  checkRunId(id)
  const run = await retryTransient(() => retryRun(db, id, runChannel(db)))
  if (run) return
  const row = await selectRun(db, id)
  if (!row) throw notFound(id)
  throw new ConflictError('WORKFLOW_NOT_FAILED', `Run "${id}" is ${row.status}; only a failed or cancelled run can be retried`, { workflowId: id, status: row.status })
}

/**
 * Waits for a run to finish and answers its output, rethrowing its failure
 * (WorkflowCancelledError for a cancelled run). A run executing in this
 * process (`local`) is awaited directly; any other is polled, 20 ms at
 * first, backing off to 500 ms.
 */
export async function awaitRun<O>(
  db: Database,
  id: string,
  o: { name: string | undefined; timeout: Duration | undefined; local?: (id: string) => Promise<Settled> | undefined },
): Promise<O> {
  const until = o.timeout === undefined ? Infinity : Date.now() + parseDuration(o.timeout)
  let pause = 20
  for (;;) {
    const local = o.local?.(id)
    const settled: Settled | 'timeout' = local ? await beforeDeadline(local, until) : await settledInDb(db, id, o.name)
    if (settled === 'timeout') break
    if (settled.final) return outcome<O>(id, settled.status, settled.output, settled.error)
    if (!local) {
      if (Date.now() >= until) break
      await new Promise((r) => setTimeout(r, Math.min(pause, Math.max(0, until - Date.now()))))
      pause = Math.min(pause * 2, 500)
    }
  }
  const of = o.name === undefined ? '' : ` of workflow "${o.name}"`
  throw new TimeoutError('WORKFLOW_RESULT_TIMEOUT', `Run "${id}"${of} has not finished yet; it keeps running, ask again later`, { workflowId: id })
}

async function settledInDb(db: Database, id: string, name: string | undefined): Promise<Settled> {
  const row = await selectRun(db, id)
  if (!row || (name !== undefined && row.workflow_name !== name)) throw notFound(id)
  if (!FINAL_STATUSES.includes(row.status)) return { final: false }
  return { final: true, status: row.status, output: row.output?.v, error: row.error ?? undefined }
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
