import { NotFoundError, ValidationError, type Logger } from '@onepipe/core'
import type { Hono } from 'hono'
import { compressedJson, DEFAULT_MAX_BODY_BYTES, intParam, readJson, respondError } from '../http/index.js'
import { checkRunId, STATUSES, toInfo } from './runs.js'
import { selectPendingSignals, selectRun } from './sql.js'
import type { RunStatus } from './types.js'
import type { Workflow } from './workflow.js'

/** Workflows mounted per app, so the shared `/runs/:id` routes find a run in any of their databases. */
const mounted = new WeakMap<object, Workflow<unknown, unknown>[]>()

/** Finds the workflow owning run `id` among those mounted on `app`. */
async function findRun(app: object, id: string): Promise<{ wf: Workflow<unknown, unknown> } | undefined> {
  checkRunId(id)
  const seen = new Set<unknown>()
  for (const wf of mounted.get(app) ?? []) {
    if (seen.has(wf.db)) continue
    seen.add(wf.db)
    const row = await selectRun(wf.db, id)
    if (!row) continue
    const owner = (mounted.get(app) ?? []).find((w) => w.name === row.workflow_name && w.db === wf.db) ?? wf
    return { wf: owner }
  }
  return undefined
}

/** `?input=` is a JSON object the runs' inputs must contain; anything else is the caller's mistake, said plainly. */
function inputFilter(raw: string | undefined): Record<string, unknown> | undefined {
  if (raw === undefined || raw === '') return undefined
  let v: unknown
  try {
    v = JSON.parse(raw)
  } catch {
    throw new ValidationError('query', [{ path: 'input', message: 'must be a JSON object, e.g. {"customer":"alice"}' }])
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError('query', [{ path: 'input', message: 'must be a JSON object, e.g. {"customer":"alice"}' }])
  return v as Record<string, unknown>
}

function runNotFound(id: string): NotFoundError {
  return new NotFoundError('WORKFLOW_RUN_NOT_FOUND', `No workflow run "${id}"`)
}

/**
 * The workflow HTTP surface:
 * `POST /__onepipe/workflows/{name}/start` (`{ input, workflowId? }`; 201 new, 200 the existing run with the
 * same input, 409 `WORKFLOW_ID_CONFLICT` for an id used with another input),
 * `GET /__onepipe/workflows/{name}/runs?status&input&limit&offset` (`input`: a JSON object the runs' inputs contain),
 * `GET /__onepipe/workflows/runs/{id}` (run, steps, queued signals),
 * `POST /__onepipe/workflows/runs/{id}/signal/{signal}` (body = data),
 * `POST /__onepipe/workflows/runs/{id}/cancel` (409 `WORKFLOW_NOT_RUNNING` once the run finished),
 * `POST /__onepipe/workflows/runs/{id}/retry` (a failed or cancelled run; 409 `WORKFLOW_NOT_FAILED` otherwise).
 */
export function mountWorkflowRoutes(app: Hono, wf: Workflow<unknown, unknown>, logger: Logger): void {
  const base = `/__onepipe/workflows/${wf.name}`
  app.post(`${base}/start`, async (c) => {
    try {
      const body = await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES, optional: true })
      if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body))) {
        throw new ValidationError('request body', [{ path: '', message: 'must be an object { "input": …, "workflowId"?: "…" }' }])
      }
      const { input, workflowId } = (body ?? {}) as { input?: unknown; workflowId?: unknown }
      if (workflowId !== undefined && typeof workflowId !== 'string') throw new ValidationError('request body', [{ path: 'workflowId', message: 'must be a string' }])
      const h = await wf.start(input, workflowId === undefined ? {} : { workflowId })
      const run = await wf.get(h.workflowId)
      return c.json({ workflowId: h.workflowId, created: h.created, status: run?.status }, h.created ? 201 : 200)
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
  app.get(`${base}/runs`, async (c) => {
    try {
      const status = c.req.query('status')
      if (status !== undefined && !STATUSES.includes(status as RunStatus)) throw new ValidationError('query', [{ path: 'status', message: `must be one of ${STATUSES.join(', ')}` }])
      const limit = intParam(c, 'limit')
      if (limit !== undefined && (limit < 1 || limit > 1000)) throw new ValidationError('query', [{ path: 'limit', message: 'must be between 1 and 1000' }])
      const offset = intParam(c, 'offset')
      const input = inputFilter(c.req.query('input'))
      const runs = await wf.list({ ...(status ? { status: status as RunStatus } : {}), ...(limit !== undefined ? { limit } : {}), ...(offset !== undefined ? { offset } : {}), ...(input !== undefined ? { input } : {}) })
      // A page of summaries: a run's input and output (up to 1 MiB each) are at /runs/{id}, so a page of
      // 1,000 runs stays small however big the runs are.
      return compressedJson(c, { runs: runs.map(({ input: _i, output: _o, ...summary }) => summary) })
    } catch (e) {
      return respondError(c, e, logger)
    }
  })

  const list = mounted.get(app)
  if (list) {
    list.push(wf)
    return
  }
  mounted.set(app, [wf])
  const runs = '/__onepipe/workflows/runs/:id'
  app.get(runs, async (c) => {
    try {
      const id = c.req.param('id')
      const found = await findRun(app, id)
      if (!found) throw runNotFound(id)
      const row = await selectRun(found.wf.db, id)
      if (!row) throw runNotFound(id)
      const [steps, signals] = await Promise.all([found.wf.steps(id), selectPendingSignals(found.wf.db, id)])
      return c.json({ run: toInfo(row), steps, pendingSignals: signals.map((s) => ({ name: s.name, data: s.data.v, createdAt: s.created_at })) })
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
  app.post(`${runs}/signal/:signal`, async (c) => {
    try {
      const id = c.req.param('id')
      const found = await findRun(app, id)
      if (!found) throw runNotFound(id)
      await found.wf.signal(id, c.req.param('signal'), await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES, optional: true }))
      return c.json({ workflowId: id, signal: c.req.param('signal'), queued: true }, 202)
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
  // Cancel and retry: find the run's workflow, act, answer the status it has now.
  for (const [action, act] of [['cancel', (wf: Workflow<unknown, unknown>, id: string) => wf.cancel(id)], ['retry', (wf: Workflow<unknown, unknown>, id: string) => wf.retry(id)]] as const) {
    app.post(`${runs}/${action}`, async (c) => {
      try {
        const id = c.req.param('id')
        const found = await findRun(app, id)
        if (!found) throw runNotFound(id)
        await act(found.wf, id)
        const run = await found.wf.get(id)
        return c.json({ workflowId: id, status: run?.status })
      } catch (e) {
        return respondError(c, e, logger)
      }
    })
  }
}
