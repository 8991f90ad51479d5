import { Hono } from 'hono'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { z } from 'zod'
import { Workflow, WorkflowEngine, silentLogger, type Database } from '@onepipe/sdk'
import { testDatabase } from '@onepipe/testing'

let db: Database
let cleanup: () => Promise<void>
let engine: WorkflowEngine
const app = new Hono()

const approval = Workflow.create('approval')
  .input(z.object({ amount: z.number().positive() }))
  .define(async (ctx, input) => {
    const ok = await ctx.waitForSignal<{ by: string }>('approve')
    return ctx.step('book', () => ({ amount: input.amount, by: ok?.by }))
  })
  .build()
const echo = Workflow.create('echo')
  .define(async (ctx, input: unknown) => ctx.step('echo', () => input))
  .build()

beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
  engine = new WorkflowEngine({ db, workflows: [approval, echo], heartbeat: 100, staleAfter: 600, poll: 50, logger: silentLogger })
  await engine.start()
  approval.routes(app)
  echo.routes(app)
})
afterAll(async () => {
  await engine.stop()
  await cleanup()
})

const post = (path: string, body?: unknown, raw?: string) =>
  app.request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, ...(raw !== undefined ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}) })

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies are checked with toMatchObject
type Body = Record<string, any>

async function json(res: Response | Promise<Response>): Promise<{ status: number; body: Body }> {
  const r = await res
  return { status: r.status, body: (await r.json()) as Body }
}

it('starts a run (201), answers the existing run for a reused id and the same input (200), refuses another input for it (409), and rejects bad input with 400 and no row', async () => {
  expect(await json(post('/__onepipe/workflows/approval/start', { input: { amount: 5 }, workflowId: 'http-1' }))).toMatchObject({ status: 201, body: { workflowId: 'http-1', created: true } })
  expect(await json(post('/__onepipe/workflows/approval/start', { input: { amount: 5 }, workflowId: 'http-1' }))).toMatchObject({ status: 200, body: { created: false } })
  // The same id with another input is not the same run: a 409, and the stored run is unchanged.
  expect(await json(post('/__onepipe/workflows/approval/start', { input: { amount: 6 }, workflowId: 'http-1' }))).toMatchObject({
    status: 409,
    body: { error: { code: 'WORKFLOW_ID_CONFLICT', details: { workflowId: 'http-1' } } },
  })
  expect((await approval.get('http-1'))?.input).toEqual({ amount: 5 })
  const bad = await json(post('/__onepipe/workflows/approval/start', { input: { amount: -3 }, workflowId: 'http-bad' }))
  expect(bad).toMatchObject({ status: 400, body: { error: { code: 'VALIDATION_FAILED', details: { issues: [{ path: 'amount' }] } } } })
  expect(await json(post('/__onepipe/workflows/approval/start', undefined, '{nope'))).toMatchObject({ status: 400, body: { error: { code: 'INVALID_JSON' } } })
  expect(await json(post('/__onepipe/workflows/approval/start', { input: { amount: 1 }, workflowId: 7 }))).toMatchObject({ status: 400 })
  expect(await json(app.request('/__onepipe/workflows/runs/http-bad'))).toMatchObject({ status: 404, body: { error: { code: 'WORKFLOW_RUN_NOT_FOUND' } } })
})

it('signals a waiting run (202), shows the run with its steps, and lists runs by status', async () => {
  const h = approval.handle('http-1')
  await expect.poll(async () => (await approval.steps('http-1')).some((s) => s.status === 'waiting'), { timeout: 20_000 }).toBe(true)
  expect(await json(post('/__onepipe/workflows/runs/http-1/signal/approve', { by: 'ana' }))).toMatchObject({ status: 202, body: { queued: true } })
  expect(await h.result('20s')).toEqual({ amount: 5, by: 'ana' })
  const detail = await json(app.request('/__onepipe/workflows/runs/http-1'))
  expect(detail.status).toBe(200)
  expect(detail.body.run).toMatchObject({ workflowId: 'http-1', workflowName: 'approval', status: 'completed', output: { amount: 5, by: 'ana' } })
  expect(detail.body.steps.map((s: { stepId: string }) => s.stepId)).toEqual(['$signal:approve', 'book'])
  expect(await json(post('/__onepipe/workflows/runs/http-1/signal/approve', {}))).toMatchObject({ status: 409, body: { error: { code: 'WORKFLOW_NOT_RUNNING' } } })
  const list = await json(app.request('/__onepipe/workflows/approval/runs?status=completed&limit=10'))
  expect(list.body.runs.map((r: { workflowId: string }) => r.workflowId)).toEqual(['http-1'])
  // A page holds summaries; input and output are at /runs/{id}.
  expect(list.body.runs[0]).not.toHaveProperty('input')
  expect(list.body.runs[0]).not.toHaveProperty('output')
  expect(list.body.runs[0]).toMatchObject({ status: 'completed' })
  expect(await json(app.request('/__onepipe/workflows/approval/runs?status=bogus'))).toMatchObject({ status: 400 })
  expect(await json(app.request('/__onepipe/workflows/approval/runs?limit=x'))).toMatchObject({ status: 400 })
})

it('finds runs of every mounted workflow under /runs/:id and cancels a live run; cancelling a finished run is a 409, an unknown run a 404', async () => {
  const started = await json(post('/__onepipe/workflows/echo/start', { input: 'hi' }))
  expect(started.status).toBe(201)
  await expect(echo.result(started.body.workflowId as string, '20s')).resolves.toBe('hi')
  expect(await json(app.request(`/__onepipe/workflows/runs/${started.body.workflowId as string}`))).toMatchObject({ status: 200, body: { run: { workflowName: 'echo', output: 'hi' } } })

  await approval.start({ amount: 9 }, { workflowId: 'http-2' })
  expect(await json(post('/__onepipe/workflows/runs/http-2/cancel'))).toMatchObject({ status: 200, body: { workflowId: 'http-2', status: 'cancelled' } })
  expect(await json(post('/__onepipe/workflows/runs/http-2/signal/approve', { by: 'late' }))).toMatchObject({ status: 409 })
  // Cancelling a finished run (cancelled, or completed like the echo run) changes nothing and says so.
  expect(await json(post('/__onepipe/workflows/runs/http-2/cancel'))).toMatchObject({ status: 409, body: { error: { code: 'WORKFLOW_NOT_RUNNING', details: { status: 'cancelled' } } } })
  expect(await json(post(`/__onepipe/workflows/runs/${started.body.workflowId as string}/cancel`))).toMatchObject({
    status: 409,
    body: { error: { code: 'WORKFLOW_NOT_RUNNING', details: { status: 'completed' } } },
  })
  expect((await approval.get('http-2'))?.status).toBe('cancelled')
  expect(await json(post('/__onepipe/workflows/runs/nope/cancel'))).toMatchObject({ status: 404 })
})
