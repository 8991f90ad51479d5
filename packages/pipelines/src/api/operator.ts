import { NotFoundError, ValidationError, type Database, type Logger } from '@onepipe/core'
import { AuthError, compressedJson, DEFAULT_MAX_BODY_BYTES, intParam, readJson, respondError, sseResponse, withErrors, type SseMessage } from '@onepipe/sdk'
import type { Context, Hono } from 'hono'
import type { PipelineChange } from '../engine/engine.js'
import type { PipelineOps } from '../engine/ops.js'
import { ALL_APPLICATIONS, toSettings, type HandlerPolicies } from '../engine/policies.js'
import { listWorkerEvents, listWorkers, setDrain, type WorkerRow } from '../workers/sql.js'
import { listPipelines } from '../engine/list.js'
import type { Pipeline } from '@onepipe/sdk'
import * as s from './schemas.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** @internal What the operator routes serve with. */
export interface OperatorDeps {
  db: Database
  ops: () => PipelineOps
  policies: () => HandlerPolicies
  onChange: (fn: (c: PipelineChange) => void) => () => void
  log: Logger
  signal: AbortSignal
  /** The app's templates by name, startable from the dashboard. */
  templates: () => ReadonlyMap<string, Pipeline>
}

/**
 * Whose pipelines the caller may see and act on: a person with the role
 * (viewer, operator) sees every application's; an application's own key
 * only its own (docs/auth.md: a key sees only its application's data).
 */
const scope = (c: Context): string | null => {
  const user = (c.get as (k: string) => unknown)('user') as { kind?: string; applicationId?: string } | undefined
  if (user?.kind !== 'application') return null
  if (!user.applicationId) throw new AuthError('FORBIDDEN', 'This key belongs to no application')
  return user.applicationId
}

/** A worker as operators see it: no session hash, names as in the rest of the API. */
const workerView = (w: WorkerRow) => ({
  workerId: w.id,
  appId: w.app_id,
  name: w.name,
  handlers: w.handlers,
  concurrency: w.concurrency,
  version: w.version,
  host: w.host,
  status: w.status,
  drain: w.drain,
  inFlight: w.in_flight,
  cpu: w.cpu,
  memoryBytes: w.memory_bytes,
  lagMs: w.lag_ms,
  startedAt: w.started_at,
  heartbeatAt: w.heartbeat_at,
  stoppedAt: w.stopped_at,
})

// An application id, or '*' for the policy every application without its own follows; an
// application's own key reaches its own application's policies only.
const appParam = (c: Context): string => {
  const v = c.req.param('app')
  if (!v || (v !== ALL_APPLICATIONS && !/^[A-Za-z0-9_.:-]{1,128}$/.test(v))) throw new ValidationError('path', [{ path: 'app', message: 'must be an application id or "*"' }])
  const only = scope(c)
  if (only !== null && v !== only) throw new AuthError('FORBIDDEN', "An application's key reaches only its own application's handler policies")
  return v
}

const id = (c: Context, what: 'pipeline' | 'stage' | 'worker'): string => {
  const v = c.req.param('id')
  if (!v || !UUID.test(v)) throw new NotFoundError(`${what.toUpperCase()}_NOT_FOUND`, `No ${what} "${String(v)}"`)
  return v
}

/**
 * The operators' routes on the app (for the dashboard and `curl`), behind
 * serve()'s guard: `viewer` reads, `operator` acts, across every
 * application.
 *
 * `GET /__onepipe/pipelines?status&appId&q&from&to&limit&cursor` (`{ pipelines, nextCursor }`, keyset pages),
 * `GET /__onepipe/pipelines/templates`, `POST /__onepipe/pipelines/templates/{name}/start` (`{ appId, input?, keywords?, idempotencyKey? }`),
 * `GET /__onepipe/pipelines/workers/{id}/events?limit`, `GET /__onepipe/pipelines/{id}`,
 * `GET /__onepipe/pipelines/{id}/logs?after`, `POST /__onepipe/pipelines/{id}/cancel`,
 * `POST /__onepipe/pipelines/stages/{id}/rerun` (`{ following? }`), `…/skip`,
 * `…/resume` (`{ decision, reason? }`), `GET /__onepipe/pipelines/workers`,
 * `POST /__onepipe/pipelines/workers/{id}/drain`,
 * `GET|PUT /__onepipe/pipelines/handlers/{app}/{name}/policy` (a handler's
 * policy for one application, or `*` for every application; the body of
 * `PUT /handlers/{name}/policy`), and
 * `GET /__onepipe/pipelines/events` (SSE of every change, from any replica).
 */
export function mountOperatorRoutes(app: Hono, d: OperatorDeps): void {
  const base = '/__onepipe/pipelines'
  const wrap = withErrors(d.log)
  app.get(`${base}/workers`, wrap(async (c) => c.json({ workers: (await listWorkers(d.db, scope(c), Math.min(intParam(c, 'limit') ?? 100, 1000))).map(workerView) })))
  app.post(`${base}/workers/:id/drain`, wrap(async (c) => {
    if (!(await setDrain(d.db, scope(c), id(c, 'worker')))) throw new NotFoundError('WORKER_NOT_FOUND', 'No active worker with this id')
    return c.json({ drain: true })
  }))
  app.get(`${base}/handlers/:app/:name/policy`, wrap(async (c) => c.json(await d.policies().get(appParam(c), s.handlerParam(c.req.param('name'))))))
  app.put(`${base}/handlers/:app/:name/policy`, wrap(async (c) => {
    const app = appParam(c)
    const name = s.handlerParam(c.req.param('name'))
    const b = s.parse(s.policyBody, await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES }), 'handler policy')
    await d.policies().set(app, name, toSettings(b))
    return c.json(await d.policies().get(app, name))
  }))
  app.get(`${base}/events`, (c) => {
    let only: string | null
    try {
      only = scope(c)
    } catch (e) {
      return respondError(c, e, d.log)
    }
    const queue: SseMessage[] = []
    let wake: (() => void) | undefined
    const stop = d.onChange((ch) => {
      if (only !== null && ch.appId !== only) return
      if (queue.length < 10_000) queue.push({ event: 'change', data: JSON.stringify(ch) })
      wake?.()
    })
    return sseResponse(
      async () => {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r))
        wake = undefined
        return queue.shift()
      },
      { onClose: () => stop(), signal: d.signal },
    )
  })
  app.get(`${base}/workers/:id/events`, wrap(async (c) => {
    const limit = intParam(c, 'limit') ?? 100
    if (limit < 1 || limit > 1000) throw new ValidationError('query', [{ path: 'limit', message: 'must be between 1 and 1000' }])
    return c.json({ events: await listWorkerEvents(d.db, scope(c), id(c, 'worker'), limit) })
  }))
  app.get(`${base}/templates`, wrap(async (c) => c.json({ templates: [...d.templates().values()].map((t) => ({ name: t.name, stages: t.stages })) })))
  app.post(`${base}/templates/:name/start`, wrap(async (c) => {
    const t = d.templates().get(c.req.param('name') ?? '')
    if (!t) throw new NotFoundError('TEMPLATE_NOT_FOUND', `No pipeline template "${c.req.param('name')}" in this app; GET ${base}/templates lists them`)
    const b = s.parse(s.templateStartBody, await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES }), 'start request')
    const only = scope(c)
    if (only !== null && b.appId !== only) throw new AuthError('FORBIDDEN', "An application's key starts pipelines for its own application only")
    const created = await t.run(b.input, { application: b.appId, ...(b.keywords ? { keywords: b.keywords } : {}), ...(b.idempotencyKey ? { idempotencyKey: b.idempotencyKey } : {}) })
    return c.json(await d.ops().get(only, created.pipelineId), created.created ? 201 : 200)
  }))
  app.get(base, wrap(async (c) => {
    const q = c.req.query()
    return compressedJson(c, await listPipelines(d.db, scope(c), { status: q.status, appId: q.appId, q: q.q, from: q.from, to: q.to, limit: intParam(c, 'limit'), cursor: q.cursor }))
  }))
  app.get(`${base}/:id`, wrap(async (c) => c.json(await d.ops().get(scope(c), id(c, 'pipeline')))))
  app.get(`${base}/:id/logs`, wrap(async (c) => c.json({ logs: await d.ops().logs(scope(c), id(c, 'pipeline'), intParam(c, 'after') ?? 0) })))
  app.post(`${base}/:id/cancel`, wrap(async (c) => c.json(await d.ops().cancel(scope(c), id(c, 'pipeline')))))
  app.post(`${base}/stages/:id/rerun`, wrap(async (c) => {
    const b = s.parse(s.rerunBody, await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES, optional: true }), 'rerun request')
    return c.json(await d.ops().rerun(scope(c), id(c, 'stage'), { following: b?.following ?? false }))
  }))
  app.post(`${base}/stages/:id/skip`, wrap(async (c) => c.json(await d.ops().skip(scope(c), id(c, 'stage')))))
  app.post(`${base}/stages/:id/resume`, wrap(async (c) => {
    const b = s.parse(s.resumeBody, await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES }), 'resume request')
    const user = (c.get as (k: string) => unknown)('user') as { id?: string } | undefined
    return c.json(await d.ops().resume(scope(c), id(c, 'stage'), { decision: b.decision, reason: b.reason, by: user?.id ? `user:${user.id}` : undefined }))
  }))
}
