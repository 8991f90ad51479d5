import { ConflictError, encodeValue, type Database } from '@onepipe/core'
import { checkSpec, stageRow, type StageSpec } from '@onepipe/sdk'
import type { StageEngine } from './engine.js'
import { pipelineNotFound, stageNotFound } from './errors.js'
import { lockPipeline, type StageRow } from './sql.js'
import * as ops from './sql-ops.js'

const iso = (d: Date | null | undefined): string | null => (d ? new Date(d).toISOString() : null)

/**
 * A stage as the API shows it.
 *
 * @example
 * ```ts
 * { id: '…', name: 'analyze', handler: 'vision.analyze', status: 'Completed', attempt: 1, dependsOn: [], output: { … } }
 * ```
 */
export interface StageView {
  id: string
  name: string
  handler: string
  status: string
  attempt: number
  dependsOn: string[]
  runInParallelWith: string[]
  maxRetries: number
  timeoutMs: number | null
  requiresApproval: boolean
  executionId: string | null
  workerId: string | null
  readyAt: string | null
  startedAt: string | null
  finishedAt: string | null
  leaseExpiresAt: string | null
  deadline: string | null
  output: unknown
  error: unknown
  approval: unknown
  attempts: { executionId: string; attempt: number; workerId: string | null; startedAt: string | null; endedAt: string | null; outcome: string | null; error: unknown }[]
}

/**
 * A pipeline as `GET /pipelines/{id}` shows it.
 *
 * @example
 * ```ts
 * { pipelineId: '…', name: 'blueprint', status: 'Running', context: {}, stages: [ … ] }
 * ```
 */
export interface PipelineView {
  pipelineId: string
  appId: string
  name: string
  template: string | null
  status: string
  keywords: string[]
  input: unknown
  context: Record<string, unknown>
  idempotencyKey: string | null
  createdAt: string | null
  updatedAt: string | null
  finishedAt: string | null
  stages: StageView[]
}

/** Reads and operator actions; `appId` null means every application (an operator of the app itself). */
export class PipelineOps {
  readonly #db: Database
  readonly #engine: StageEngine

  constructor(db: Database, engine: StageEngine) {
    this.#db = db
    this.#engine = engine
  }

  /** @throws NotFoundError 404 `PIPELINE_NOT_FOUND` */
  async get(appId: string | null, id: string): Promise<PipelineView> {
    const p = await ops.pipelineById(this.#db, appId, id)
    if (!p) throw pipelineNotFound(id)
    const [stages, attempts] = await Promise.all([ops.stagesOf(this.#db, id), ops.attemptsOf(this.#db, id)])
    return {
      ...summary(p),
      stages: stages.map((s) => ({
        id: s.id,
        name: s.name,
        handler: s.handler,
        status: s.status,
        attempt: s.attempt,
        dependsOn: s.depends_on,
        runInParallelWith: s.parallel_with,
        maxRetries: s.max_retries,
        timeoutMs: s.timeout_ms,
        requiresApproval: s.requires_approval,
        executionId: s.execution_id,
        workerId: s.worker_id,
        readyAt: iso(s.ready_at),
        startedAt: iso(s.started_at),
        finishedAt: iso(s.finished_at),
        leaseExpiresAt: iso(s.lease_expires_at),
        deadline: iso(s.deadline_at),
        output: s.output ?? null,
        error: s.error ?? null,
        approval: s.approval ?? null,
        attempts: attempts
          .filter((a) => a.stage_id === s.id)
          .map((a) => ({ executionId: a.execution_id, attempt: a.attempt, workerId: a.worker_id, startedAt: iso(a.started_at), endedAt: iso(a.ended_at), outcome: a.outcome, error: a.error ?? null })),
      })),
    }
  }

  /** The newest pipelines first (summaries: no stages). */
  async list(appId: string | null, f: { status?: string; limit?: number; before?: string } = {}): Promise<Omit<PipelineView, 'stages'>[]> {
    const rows = await ops.listPipelines(this.#db, { appId, status: f.status ?? null, limit: Math.min(f.limit ?? 50, 500), before: f.before ? new Date(f.before) : null })
    return rows.map(summary)
  }

  /**
   * Cancels a running pipeline: its stages not yet final end Cancelled; an
   * ack or renewal of its running attempts then gets 409 `JOB_CANCELLED`.
   *
   * @throws NotFoundError 404; ConflictError 409 `PIPELINE_FINISHED` for a pipeline already final
   */
  async cancel(appId: string | null, id: string): Promise<{ status: 'Cancelled' }> {
    await this.#engine.transaction(async (tx) => {
      const p = await ops_lock(tx, appId, id)
      if (p.status !== 'Running') throw new ConflictError('PIPELINE_FINISHED', `Pipeline ${id} is already ${p.status}`, { status: p.status })
      await ops.cancelStages(tx, id)
      await ops.setPipelineStatus(tx, id, 'Cancelled', true)
      await this.#engine.publish(tx, { appId: p.app_id, pipelineId: id, pipelineStatus: 'Cancelled' })
    })
    return { status: 'Cancelled' }
  }

  /**
   * Runs a stage again (a new attempt with a new execution id; a running
   * one is superseded), optionally with every stage after it.
   *
   * @throws NotFoundError 404; ConflictError 409 `PIPELINE_CANCELLED`
   */
  async rerun(appId: string | null, stageId: string, o: { following?: boolean } = {}): Promise<PipelineView> {
    const pipelineId = await this.#stageAction(appId, stageId, async (tx, stage, appOf) => {
      await ops.makeReady(tx, stage.id, true)
      if (o.following) await ops.resetFollowing(tx, stage.pipeline_id, stage.name)
      await ops.setPipelineStatus(tx, stage.pipeline_id, 'Running', false)
      await this.#engine.wake(tx, appOf, [stage.handler])
      await this.#engine.publish(tx, { appId: appOf, pipelineId: stage.pipeline_id, stage: stage.name, stageStatus: 'Pending', pipelineStatus: 'Running' })
    })
    return this.get(appId, pipelineId)
  }

  /**
   * Skips a stage that has not completed: the stages depending on it run
   * as if it had.
   *
   * @throws NotFoundError 404; ConflictError 409 `STAGE_FINISHED` for a Completed or Skipped stage
   */
  async skip(appId: string | null, stageId: string): Promise<PipelineView> {
    const pipelineId = await this.#stageAction(appId, stageId, async (tx, stage) => {
      if (stage.status === 'Completed' || stage.status === 'Skipped') throw new ConflictError('STAGE_FINISHED', `Stage "${stage.name}" is already ${stage.status}`)
      await ops.finishStage(tx, stage.id, 'Skipped', null, null)
      const reopened = stage.status === 'Failed' || stage.status === 'Cancelled'
      if (reopened) await ops.setPipelineStatus(tx, stage.pipeline_id, 'Running', false)
      await this.#engine.afterStageChange(tx, { ...stage, status: 'Skipped' })
    })
    return this.get(appId, pipelineId)
  }

  /**
   * Approves or rejects a stage waiting for approval: approved, it becomes
   * ready; rejected, it fails (and what depends on it is skipped).
   *
   * @throws NotFoundError 404; ConflictError 409 `STAGE_NOT_AWAITING_APPROVAL`
   */
  async resume(appId: string | null, stageId: string, d: { decision: 'approved' | 'rejected'; reason?: string | undefined; by?: string | undefined }): Promise<PipelineView> {
    const pipelineId = await this.#stageAction(appId, stageId, async (tx, stage, appOf) => {
      if (stage.status !== 'AwaitingApproval') throw new ConflictError('STAGE_NOT_AWAITING_APPROVAL', `Stage "${stage.name}" is ${stage.status}, not waiting for approval`)
      const approval = encodeValue({ decision: d.decision, reason: d.reason ?? null, by: d.by ?? null, at: new Date().toISOString() }, { subject: 'approval' })
      if (d.decision === 'approved') {
        await ops.makeReady(tx, stage.id)
        await ops.recordApproval(tx, stage.id, approval)
        await this.#engine.wake(tx, appOf, [stage.handler])
        await this.#engine.publish(tx, { appId: appOf, pipelineId: stage.pipeline_id, stage: stage.name, stageStatus: 'Pending' })
      } else {
        const error = JSON.stringify({ code: 'APPROVAL_REJECTED', message: d.reason ?? 'Rejected by an operator', retryable: false })
        await ops.finishStage(tx, stage.id, 'Failed', error, approval)
        await this.#engine.afterStageChange(tx, { ...stage, status: 'Failed' })
      }
    })
    return this.get(appId, pipelineId)
  }

  /**
   * Appends stages to a running pipeline. Without `dependsOn`, a new stage
   * waits for the group declared before it (the last stages, for the
   * first one appended).
   *
   * @throws ValidationError 400 (duplicate or unknown names, cycles); NotFoundError 404; ConflictError 409 `PIPELINE_FINISHED`
   */
  async append(appId: string | null, id: string, added: (Omit<StageSpec, 'dependsOn'> & { dependsOn?: string[] })[]): Promise<PipelineView> {
    await this.#engine.transaction(async (tx) => {
      const p = await ops_lock(tx, appId, id)
      if (p.status !== 'Running') throw new ConflictError('PIPELINE_FINISHED', `Pipeline ${id} is ${p.status}; stages can be appended only to a running pipeline`)
      const existing = await ops.stagesOf(tx, id)
      const spec = checkSpec({
        name: 'append',
        keywords: [],
        context: {},
        stages: [...existing.map((s) => specOf(s)), ...added],
      })
      const byName = new Map(existing.map((s) => [s.name, s]))
      const rows = spec.stages.slice(existing.length).map((s, k) => {
        const deps = s.dependsOn.map((n) => byName.get(n))
        const blocked = deps.some((d) => d !== undefined && (d.status === 'Skipped' || d.status === 'Cancelled' || (d.status === 'Failed' && !d.run_next_if_failed)))
        const waiting = s.dependsOn.filter((n) => {
          const d = byName.get(n)
          return d === undefined || !(d.status === 'Completed' || (d.status === 'Failed' && d.run_next_if_failed))
        }).length
        return { ...stageRow(s, existing.length + k), waiting_on: waiting, status: blocked ? 'Skipped' : waiting > 0 ? 'NotStarted' : s.requiresApproval ? 'AwaitingApproval' : 'Pending' }
      })
      const ready = await ops.insertAppended(tx, id, p.app_id, JSON.stringify(rows))
      await this.#engine.wake(tx, p.app_id, ready)
      await this.#engine.publish(tx, { appId: p.app_id, pipelineId: id, pipelineStatus: 'Running' })
    })
    return this.get(appId, id)
  }

  /** Log lines of a pipeline after `after` (an id), oldest first. */
  async logs(appId: string | null, id: string, after = 0, limit = 500): Promise<{ id: number; stageId: string | null; executionId: string | null; level: string; message: string; fields: unknown; at: string | null }[]> {
    if (!(await ops.pipelineById(this.#db, appId, id))) throw pipelineNotFound(id)
    return (await ops.logsOf(this.#db, id, after, Math.min(limit, 5000))).map((l) => ({ id: Number(l.id), stageId: l.stage_id, executionId: l.execution_id, level: l.level, message: l.message, fields: l.fields ?? null, at: iso(l.at) }))
  }

  async #stageAction(appId: string | null, stageId: string, fn: (tx: import('@onepipe/core').Queryable, stage: StageRow, appOf: string) => Promise<void>): Promise<string> {
    return this.#engine.transaction(async (tx) => {
      const pid = await ops.pipelineOfStage(tx, appId, stageId)
      if (!pid) throw stageNotFound(stageId)
      const p = await ops_lock(tx, appId, pid)
      if (p.status === 'Cancelled') throw new ConflictError('PIPELINE_CANCELLED', `Pipeline ${pid} was cancelled`)
      const stage = await ops.lockStage(tx, appId, stageId)
      if (!stage) throw stageNotFound(stageId)
      await fn(tx, stage, p.app_id)
      return pid
    })
  }
}

async function ops_lock(tx: import('@onepipe/core').Queryable, appId: string | null, id: string): Promise<{ id: string; status: string; app_id: string }> {
  const p = await lockPipeline(tx, appId, id)
  if (!p) throw pipelineNotFound(id)
  return p
}

function summary(p: ops.PipelineRow): Omit<PipelineView, 'stages'> {
  return {
    pipelineId: p.id,
    appId: p.app_id,
    name: p.name,
    template: p.template,
    status: p.status,
    keywords: p.keywords,
    input: p.input ?? null,
    context: p.context,
    idempotencyKey: p.idempotency_key,
    createdAt: iso(p.created_at),
    updatedAt: iso(p.updated_at),
    finishedAt: iso(p.finished_at),
  }
}

function specOf(s: StageRow): StageSpec {
  return {
    name: s.name,
    handler: s.handler,
    dependsOn: s.depends_on,
    parallelWith: s.parallel_with,
    maxRetries: s.max_retries,
    retryIntervalMs: s.retry_interval_ms,
    maxRetryIntervalMs: s.max_retry_interval_ms,
    backoff: s.backoff,
    timeoutMs: s.timeout_ms,
    runNextIfFailed: s.run_next_if_failed,
    requiresApproval: s.requires_approval,
  }
}
