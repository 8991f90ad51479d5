import { WorkerHttpError } from '../errors/index.js'
import type { Job } from '../worker/job.js'

// The shapes of docs/protocol/workers.md, as they come over the wire. Every
// answer is checked where it is read: a control plane of another version
// must give a clear error, not an undefined deep in a handler.

/** `201` of `POST /workers/bootstrap`. */
export interface BootstrapAnswer {
  workerId: string
  sessionToken: string
  heartbeatMs: number
  leaseMs: number
  maxWaitMs: number
}

/** One job of a `POST /jobs/pull` answer: what a handler sees, and its lease. */
export interface WireJob extends Omit<Job, 'deadline'> {
  leaseMs: number | undefined
  leaseExpiresAt: string | undefined
  deadline: string | undefined
}

/** One entry of a batched ack's `results`. */
export interface AckResult {
  executionId: string
  status: number
  error: { code?: string; message?: string } | undefined
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const posInt = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0

function bad(call: string, what: string, body: unknown): WorkerHttpError {
  return new WorkerHttpError(call, 502, { error: { code: 'WORKER_BAD_ANSWER', message: `unexpected answer (${what}): ${JSON.stringify(body)?.slice(0, 300)}` } })
}

/** @throws WorkerHttpError `WORKER_BAD_ANSWER` when a field is missing */
export function parseBootstrap(body: unknown): BootstrapAnswer {
  const call = 'POST /workers/bootstrap'
  if (!isObject(body)) throw bad(call, 'not an object', body)
  const { workerId, sessionToken, heartbeatMs, leaseMs, maxWaitMs } = body
  if (typeof workerId !== 'string' || typeof sessionToken !== 'string') throw bad(call, 'workerId and sessionToken must be strings', body)
  if (!posInt(heartbeatMs) || !posInt(leaseMs) || !(typeof maxWaitMs === 'number' && maxWaitMs >= 0)) throw bad(call, 'heartbeatMs, leaseMs and maxWaitMs must be numbers', body)
  return { workerId, sessionToken, heartbeatMs, leaseMs, maxWaitMs }
}

/** @throws WorkerHttpError `WORKER_BAD_ANSWER` when the answer has no `jobs` array or a job no executionId */
export function parseJobs(body: unknown): WireJob[] {
  const call = 'POST /jobs/pull'
  if (!isObject(body) || !Array.isArray(body.jobs)) throw bad(call, 'no jobs array', body)
  return body.jobs.map((j: unknown) => {
    if (!isObject(j) || typeof j.executionId !== 'string' || typeof j.handler !== 'string') throw bad(call, 'a job without executionId or handler', j)
    const str = (v: unknown) => (typeof v === 'string' ? v : '')
    return {
      executionId: j.executionId,
      stageId: str(j.stageId),
      pipelineId: str(j.pipelineId),
      stageName: str(j.stageName),
      handler: j.handler,
      attempt: typeof j.attempt === 'number' ? j.attempt : 1,
      input: j.input,
      upstream: (isObject(j.upstream) ? j.upstream : {}) as Record<string, { output: unknown }>,
      context: isObject(j.context) ? j.context : {},
      leaseMs: posInt(j.leaseMs) ? j.leaseMs : undefined,
      leaseExpiresAt: typeof j.leaseExpiresAt === 'string' ? j.leaseExpiresAt : undefined,
      deadline: typeof j.deadline === 'string' ? j.deadline : undefined,
    }
  })
}

/** The `results` of a batched ack; an empty list for an answer without them. */
export function parseAckResults(body: unknown): AckResult[] {
  if (!isObject(body) || !Array.isArray(body.results)) return []
  return body.results.filter(isObject).map((r) => ({
    executionId: typeof r.executionId === 'string' ? r.executionId : '',
    status: typeof r.status === 'number' ? r.status : 0,
    error: isObject(r.error) ? (r.error as AckResult['error']) : undefined,
  }))
}
