import { NotFoundError, ValidationError, type Database, type Logger } from '@onepipe/core'
import { DEFAULT_MAX_BODY_BYTES, intParam, readJson, respondError, sseResponse, type SseMessage } from '@onepipe/sdk'
import type { Context, Hono } from 'hono'
import type { PipelineChange } from '../engine/engine.js'
import type { PipelineOps } from '../engine/ops.js'
import { listWorkers, setDrain } from '../workers/sql.js'
import * as s from './schemas.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const STATUSES = ['Running', 'Completed', 'Failed', 'Cancelled']

/** @internal What the operator routes serve with. */
export interface OperatorDeps {
  db: Database
  ops: () => PipelineOps
  onChange: (fn: (c: PipelineChange) => void) => () => void
  log: Logger
  signal: AbortSignal
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
 * `GET /__onepipe/pipelines?status&limit`, `GET /__onepipe/pipelines/{id}`,
 * `GET /__onepipe/pipelines/{id}/logs?after`, `POST /__onepipe/pipelines/{id}/cancel`,
 * `POST /__onepipe/pipelines/stages/{id}/rerun` (`{ following? }`), `…/skip`,
 * `…/resume` (`{ decision, reason? }`), `GET /__onepipe/pipelines/workers`,
 * `POST /__onepipe/pipelines/workers/{id}/drain`, and
 * `GET /__onepipe/pipelines/events` (SSE of every change, from any replica).
 */
export function mountOperatorRoutes(app: Hono, d: OperatorDeps): void {
  const base = '/__onepipe/pipelines'
  const wrap = (fn: (c: Context) => Promise<Response>) => async (c: Context) => {
    try {
      return await fn(c)
    } catch (e) {
      return respondError(c, e, d.log)
    }
  }
  app.get(`${base}/workers`, wrap(async (c) => c.json({ workers: await listWorkers(d.db, null, Math.min(intParam(c, 'limit') ?? 100, 1000)) })))
  app.post(`${base}/workers/:id/drain`, wrap(async (c) => {
    if (!(await setDrain(d.db, null, id(c, 'worker')))) throw new NotFoundError('WORKER_NOT_FOUND', 'No active worker with this id')
    return c.json({ drain: true })
  }))
  app.get(`${base}/events`, () => {
    const queue: SseMessage[] = []
    let wake: (() => void) | undefined
    const stop = d.onChange((ch) => {
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
  app.get(base, wrap(async (c) => {
    const status = c.req.query('status')
    if (status !== undefined && !STATUSES.includes(status)) throw new ValidationError('query', [{ path: 'status', message: `must be one of ${STATUSES.join(', ')}` }])
    return c.json({ pipelines: await d.ops().list(null, { ...(status ? { status } : {}), limit: intParam(c, 'limit') ?? 50 }) })
  }))
  app.get(`${base}/:id`, wrap(async (c) => c.json(await d.ops().get(null, id(c, 'pipeline')))))
  app.get(`${base}/:id/logs`, wrap(async (c) => c.json({ logs: await d.ops().logs(null, id(c, 'pipeline'), intParam(c, 'after') ?? 0) })))
  app.post(`${base}/:id/cancel`, wrap(async (c) => c.json(await d.ops().cancel(null, id(c, 'pipeline')))))
  app.post(`${base}/stages/:id/rerun`, wrap(async (c) => {
    const b = s.parse(s.rerunBody, await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES, optional: true }), 'rerun request')
    return c.json(await d.ops().rerun(null, id(c, 'stage'), { following: b?.following ?? false }))
  }))
  app.post(`${base}/stages/:id/skip`, wrap(async (c) => c.json(await d.ops().skip(null, id(c, 'stage')))))
  app.post(`${base}/stages/:id/resume`, wrap(async (c) => {
    const b = s.parse(s.resumeBody, await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES }), 'resume request')
    const user = (c.get as (k: string) => unknown)('user') as { id?: string } | undefined
    return c.json(await d.ops().resume(null, id(c, 'stage'), { decision: b.decision, reason: b.reason, by: user?.id ? `user:${user.id}` : undefined }))
  }))
}
