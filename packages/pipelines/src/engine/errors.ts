import { ConflictError, NotFoundError } from '@onepipe/core'

/**
 * An ack or lease renewal named an attempt that is over (its lease or
 * deadline passed, another attempt replaced it, or it was acked before).
 * Nothing was changed; the worker must drop the job. HTTP 409.
 *
 * @example
 * ```ts
 * try { await engine.renew(appId, executionId) } catch (e) { if (e instanceof StaleAttemptError) controller.abort() }
 * ```
 */
export class StaleAttemptError extends ConflictError {
  readonly executionId: string
  constructor(executionId: string, why: string) {
    const acked = ['completed', 'failed', 'released'].includes(why)
    super(
      'STALE_ATTEMPT',
      acked
        ? `Attempt ${executionId} was already acknowledged (${why}); it can no longer be renewed or acknowledged again.`
        : `Attempt ${executionId} is over (${why}); it can no longer be renewed or acknowledged. Stop the job: the stage is retried or finished without it.`,
      { executionId, reason: why },
    )
    this.executionId = executionId
  }
}

/**
 * The attempt's pipeline was cancelled. Nothing was changed; HTTP 409.
 *
 * @example
 * ```ts
 * if (e instanceof JobCancelledError) controller.abort()
 * ```
 */
export class JobCancelledError extends ConflictError {
  readonly executionId: string
  constructor(executionId: string) {
    super('JOB_CANCELLED', `The pipeline of attempt ${executionId} was cancelled; stop the job.`, { executionId })
    this.executionId = executionId
  }
}

/** @internal */
export const attemptNotFound = (executionId: string): NotFoundError =>
  new NotFoundError('ATTEMPT_NOT_FOUND', `No attempt ${executionId} belongs to this application`, { executionId })
/** @internal */
export const pipelineNotFound = (id: string): NotFoundError => new NotFoundError('PIPELINE_NOT_FOUND', `No pipeline ${id} belongs to this application`, { pipelineId: id })
/** @internal */
export const stageNotFound = (id: string): NotFoundError => new NotFoundError('STAGE_NOT_FOUND', `No stage ${id} belongs to this application`, { stageId: id })
