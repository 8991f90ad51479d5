import { checkText, encodeValue, NotFoundError, PayloadTooLargeError, type Database, type Logger } from '@onepipe/core'
import { DEFAULT_MAX_BODY_BYTES, insertPipeline, parseAppendedStages, parsePipelineDefinition, readJson, requestIdOf, respondError, type Pipeline } from '@onepipe/sdk'
import { Hono, type Context } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { randomUUID } from 'node:crypto'
import type { Dispatch } from '../dispatch/postgres.js'
import type { Ack, StageEngine } from '../engine/engine.js'
import type { PipelineOps } from '../engine/ops.js'
import { toSettings, type HandlerPolicies } from '../engine/policies.js'
import { attemptOwner, insertLogs } from '../engine/sql-ops.js'
import * as workers from '../workers/sql.js'
import { newSessionToken, type ApiCaller, type Callers } from './callers.js'
import * as s from './schemas.js'

/** @internal What the external API serves with. */
export interface ApiDeps {
  db: Database
  engine: StageEngine
  ops: PipelineOps
  dispatch: Dispatch
  policies: HandlerPolicies
  callers: Callers
  templates: ReadonlyMap<string, Pipeline>
  log: Logger
  leaseMs: number
  heartbeatMs: number
  maxWaitMs: number
  /** Aborted at shutdown: parked pulls answer 204 at once. */
  signal: AbortSignal
}

type Env = { Variables: { caller: ApiCaller } }
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const idParam = (v: string | undefined, what: string): string => {
  if (!v || !UUID.test(v)) throw new NotFoundError(`${what.toUpperCase()}_NOT_FOUND`, `No ${what} ${String(v)} belongs to this application`)
  return v
}

/**
 * The external API workers and applications call (docs/protocol/workers.md):
 * pipelines, jobs, logs and worker sessions. Every route authenticates the
 * caller as an application and touches only that application's rows.
 */
export function workerApi(d: ApiDeps): Hono<Env> {
  const app = new Hono<Env>()
  app.onError((e, c) => respondError(c, e, d.log))
  app.notFound((c) => respondError(c, new NotFoundError('NOT_FOUND', `No route ${c.req.method} ${c.req.path} in the worker API (docs/protocol/workers.md)`), d.log))
  app.use('*', bodyLimit({ maxSize: DEFAULT_MAX_BODY_BYTES, onError: (c) => respondError(c, new PayloadTooLargeError('request body', DEFAULT_MAX_BODY_BYTES), d.log) }))
  app.use('*', async (c, next) => {
    c.set('caller', await d.callers.of(c as unknown as Context))
    await next()
  })
  const json = async (c: Context) => readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES })

  app.post('/pipelines', async (c) => {
    const { appId } = c.get('caller')
    const body = await json(c)
    const key = c.req.header('idempotency-key')
    if (key !== undefined) checkText(key, { subject: 'Idempotency-Key header', path: 'Idempotency-Key', max: 256 })
    let created
    if (typeof body === 'object' && body !== null && 'template' in body) {
      const b = s.parse(s.templateBody, body, 'pipeline request')
      const t = d.templates.get(b.template)
      if (!t) throw new NotFoundError('TEMPLATE_NOT_FOUND', `No pipeline template "${b.template}" is served here`)
      created = await insertPipeline(d.db, { appId, spec: t.spec(b.input, { ...(b.context ? { context: b.context } : {}), ...(b.keywords ? { keywords: b.keywords } : {}) }), template: t.name, idempotencyKey: key })
    } else {
      created = await insertPipeline(d.db, { appId, spec: parsePipelineDefinition(body), idempotencyKey: key })
    }
    // A new pipeline is answered from what was written (no reads: each would be a commit of its own);
    // a repeated key is answered with the pipeline as it stands now.
    if (created.created && created.stages) return c.json({ pipelineId: created.pipelineId, status: 'Running', stages: created.stages }, 201)
    return c.json(await d.ops.get(appId, created.pipelineId), 200)
  })
  app.get('/pipelines', async (c) => {
    const q = s.parse(s.listQuery, { status: c.req.query('status'), limit: c.req.query('limit') }, 'query')
    return c.json({ pipelines: await d.ops.list(c.get('caller').appId, { ...(q.status ? { status: q.status } : {}), limit: q.limit ?? 50 }) })
  })
  app.get('/pipelines/:id', async (c) => c.json(await d.ops.get(c.get('caller').appId, idParam(c.req.param('id'), 'pipeline'))))
  app.get('/pipelines/:id/logs', async (c) => {
    const after = Number(c.req.query('after') ?? 0)
    return c.json({ logs: await d.ops.logs(c.get('caller').appId, idParam(c.req.param('id'), 'pipeline'), Number.isInteger(after) && after >= 0 ? after : 0) })
  })
  app.post('/pipelines/:id/cancel', async (c) => c.json(await d.ops.cancel(c.get('caller').appId, idParam(c.req.param('id'), 'pipeline'))))
  app.post('/pipelines/:id/stages', async (c) => {
    const body = await json(c)
    const stages = typeof body === 'object' && body !== null ? (body as { stages?: unknown }).stages : undefined
    return c.json(await d.ops.append(c.get('caller').appId, idParam(c.req.param('id'), 'pipeline'), parseAppendedStages(stages)))
  })
  app.post('/stages/:id/resume', async (c) => {
    const b = s.parse(s.resumeBody, await json(c), 'resume request')
    return c.json(await d.ops.resume(c.get('caller').appId, idParam(c.req.param('id'), 'stage'), { decision: b.decision, reason: b.reason, by: `application:${c.get('caller').appId}` }))
  })
  app.post('/stages/:id/rerun', async (c) => {
    const b = s.parse(s.rerunBody, await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES, optional: true }), 'rerun request')
    return c.json(await d.ops.rerun(c.get('caller').appId, idParam(c.req.param('id'), 'stage'), { following: b?.following ?? false }))
  })
  app.post('/stages/:id/skip', async (c) => c.json(await d.ops.skip(c.get('caller').appId, idParam(c.req.param('id'), 'stage'))))

  // The caller's application's own policy; without one, the all-applications policy answers.
  app.get('/handlers/:name/policy', async (c) => c.json(await d.policies.get(c.get('caller').appId, s.handlerParam(c.req.param('name')))))
  app.put('/handlers/:name/policy', async (c) => {
    const { appId } = c.get('caller')
    const name = s.handlerParam(c.req.param('name'))
    const b = s.parse(s.policyBody, await json(c), 'handler policy')
    await d.policies.set(appId, name, toSettings(b))
    return c.json(await d.policies.get(appId, name))
  })

  app.post('/jobs/pull', async (c) => {
    const caller = c.get('caller')
    const b = s.parse(s.pullBody, await json(c), 'pull request')
    const waitMs = Math.min(b.waitMs ?? (b.wait === undefined ? d.maxWaitMs : b.wait * 1000), d.maxWaitMs)
    // The pull ends when the client goes away too, so a parked pull never claims for nobody.
    const ac = new AbortController()
    const onAbort = (): void => ac.abort()
    d.signal.addEventListener('abort', onAbort, { once: true })
    c.req.raw.signal.addEventListener('abort', onAbort, { once: true })
    try {
      const jobs = await d.dispatch.pull(caller.appId, b.handlers, b.max ?? 1, d.signal.aborted ? 0 : waitMs, caller.workerId ?? b.workerId ?? null, ac.signal)
      if (jobs.length === 0) return c.body(null, 204)
      return c.json({ jobs })
    } finally {
      d.signal.removeEventListener('abort', onAbort)
      c.req.raw.signal.removeEventListener('abort', onAbort)
    }
  })
  app.post('/jobs/lease/renew', async (c) => {
    const b = s.parse(s.renewBody, await json(c), 'renew request')
    return c.json(await d.engine.renew(c.get('caller').appId, b.executionId))
  })
  app.post('/jobs/ack', async (c) => {
    const { appId } = c.get('caller')
    const raw = await json(c)
    const b = typeof raw === 'object' && raw !== null && 'acks' in raw ? s.parse(s.ackBatch, raw, 'ack batch') : s.parse(s.ackOne, raw, 'ack')
    if ('acks' in b) {
      const results = await d.engine.ackMany(appId, b.acks.map(toAck))
      return c.json({
        results: results.map((r) =>
          'error' in r ? { executionId: r.executionId, status: r.error.status, error: { code: r.error.code, message: r.error.message } } : { executionId: r.executionId, status: 200, stageStatus: r.stageStatus },
        ),
      })
    }
    return c.json(await d.engine.ack(appId, toAck(b)))
  })
  app.post('/logs', async (c) => {
    const { appId } = c.get('caller')
    const b = s.parse(s.logsBody, await json(c), 'logs')
    let pipelineId = b.pipelineId
    let stageId: string | null = null
    if (b.executionId) {
      const o = await attemptOwner(d.db, appId, b.executionId)
      if (!o) throw new NotFoundError('ATTEMPT_NOT_FOUND', `No attempt ${b.executionId} belongs to this application`)
      pipelineId = o.pipeline_id
      stageId = o.stage_id
    }
    if (!pipelineId) throw new NotFoundError('PIPELINE_NOT_FOUND', 'Name the executionId or pipelineId the lines belong to')
    if (!b.executionId) await d.ops.get(appId, pipelineId)
    await insertLogs(d.db, appId, pipelineId, encodeValue(b.entries.map((e) => ({ ...e, stage_id: stageId, execution_id: b.executionId ?? null })), { subject: 'log entries' }))
    return c.body(null, 202)
  })

  app.post('/workers/bootstrap', async (c) => {
    const { appId } = c.get('caller')
    const b = s.parse(s.bootstrapBody, await json(c), 'bootstrap request')
    const workerId = randomUUID()
    const { token, hash } = newSessionToken(workerId)
    await workers.insertWorker(d.db, { id: workerId, appId, name: b.name, handlers: b.handlers, concurrency: b.concurrency, version: b.version ?? null, host: b.host ?? null, sessionHash: hash })
    // No broker address or credentials here, ever: workers speak HTTP to the control plane only.
    return c.json({ workerId, sessionToken: token, heartbeatMs: d.heartbeatMs, leaseMs: d.leaseMs, maxWaitMs: d.maxWaitMs }, 201)
  })
  app.post('/workers/heartbeat', async (c) => {
    const caller = c.get('caller')
    const b = s.parse(s.heartbeatBody, await json(c), 'heartbeat')
    const r = await workers.heartbeat(d.db, caller.appId, { workerId: workerOf(caller, b.workerId), inFlight: b.inFlight, cpu: b.cpu ?? null, memoryBytes: b.memoryBytes ?? null, lagMs: b.lagMs === undefined ? null : Math.round(b.lagMs) })
    if (!r) throw new NotFoundError('WORKER_NOT_FOUND', 'No active worker session with this id; bootstrap again')
    return c.json({ drain: r.drain })
  })
  app.post('/workers/events', async (c) => {
    const caller = c.get('caller')
    const b = s.parse(s.eventsBody, await json(c), 'worker events')
    const n = await workers.insertWorkerEvents(d.db, caller.appId, workerOf(caller, b.workerId), encodeValue(b.events, { subject: 'worker events' }))
    if (n === 0) throw new NotFoundError('WORKER_NOT_FOUND', 'No worker with this id belongs to this application')
    return c.body(null, 202)
  })
  app.post('/workers/shutdown', async (c) => {
    const caller = c.get('caller')
    const b = s.parse(s.shutdownBody, await json(c), 'shutdown request')
    const id = workerOf(caller, b.workerId)
    if (!(await workers.stopWorker(d.db, caller.appId, id))) throw new NotFoundError('WORKER_NOT_FOUND', 'No active worker with this id belongs to this application')
    d.callers.forget(id)
    return c.json({ stopped: true })
  })
  return app
}

function workerOf(caller: ApiCaller, given: string | undefined): string {
  const id = caller.workerId ?? given
  if (!id) throw new NotFoundError('WORKER_NOT_FOUND', 'Name the workerId (or call with the worker session token)')
  return id
}

function toAck(a: s.AckBody): Ack {
  return {
    executionId: a.executionId,
    status: a.status,
    ...(a.output === undefined ? {} : { output: a.output }),
    ...(a.error ? { error: { message: a.error.message, code: a.error.code, name: a.error.name, retryable: a.error.retryable } } : {}),
    ...(a.context ? { context: a.context } : {}),
    ...(a.logs && a.logs.length > 0 ? { logs: a.logs } : {}),
  }
}

/** @internal The request id, for logs of the API's own. */
export const requestId = requestIdOf
