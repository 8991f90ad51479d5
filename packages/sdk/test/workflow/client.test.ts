// WorkflowClient: start, signal, cancel, read and await runs by workflow
// name with only the database; the run is executed by an engine that has the
// body. Also the 409s of start (same id, other input) and cancel (finished run).
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { z } from 'zod'
import { ConflictError, Workflow, WorkflowClient, WorkflowEngine, silentLogger, type Database, type WorkflowEngineOptions } from '@onepipe/sdk'
import { testDatabase, waitFor } from '@onepipe/testing'

let db: Database
let cleanup: () => Promise<void>
let client: WorkflowClient
const engines: WorkflowEngine[] = []
let n = 0
const uid = (p: string) => `${p}-${++n}-${Math.random().toString(36).slice(2, 8)}`

beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
  client = new WorkflowClient({ db })
})
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()))
})
afterAll(async () => {
  await cleanup()
})

async function engine(workflows: NonNullable<WorkflowEngineOptions['workflows']>, o: Partial<WorkflowEngineOptions> = {}): Promise<WorkflowEngine> {
  const e = new WorkflowEngine({ db, heartbeat: 100, staleAfter: '5s', poll: 50, logger: silentLogger, ...o, workflows })
  engines.push(e)
  await e.start()
  return e
}

function latch(): { wait: Promise<void>; open: () => void } {
  let open!: () => void
  const wait = new Promise<void>((r) => (open = r))
  return { wait, open }
}

it('starts a run by name from a process without the body; an engine with the body runs it; get shows its owner and lease while it runs', async () => {
  const name = uid('order')
  const inStep = latch()
  const go = latch()
  const wf = Workflow.create(name)
    .db(db)
    .input(z.object({ id: z.string(), qty: z.number().default(1) }))
    .define(async (ctx, input) => {
      const ok = await ctx.waitForSignal<{ by: string }>('approve')
      await ctx.step('hold', async () => {
        inStep.open()
        await go.wait
      })
      return { id: input.id, qty: input.qty, by: ok?.by }
    })
    .build()
  // Started before any engine has the workflow: it waits as pending.
  const run = await client.start<{ id: string }, { id: string; qty: number; by: string }>(name, { id: 'o1' }, { workflowId: `${name}-1` })
  expect(run.created).toBe(true)
  expect(await run.status()).toMatchObject({ status: 'pending', owner: undefined, heartbeatAt: undefined })
  const e = await engine([wf], { instanceId: 'engine-a' })
  await client.signal(run.workflowId, 'approve', { by: 'ana' })
  await inStep.wait
  const info = await client.get(run.workflowId)
  expect(info).toMatchObject({ status: 'running', owner: 'engine-a' })
  expect(info?.heartbeatAt).toBeInstanceOf(Date)
  go.open()
  // The engine parsed the input with the workflow's schema (qty defaulted) and stored that.
  expect(await run.result('30s')).toEqual({ id: 'o1', qty: 1, by: 'ana' })
  expect(await client.get(run.workflowId)).toMatchObject({ status: 'completed', owner: undefined, heartbeatAt: undefined, input: { id: 'o1', qty: 1 } })
  expect((await client.steps(run.workflowId)).map((s) => s.stepId)).toEqual(['$signal:approve', 'hold'])
  expect((await client.list({ workflowName: name })).map((r) => r.workflowId)).toEqual([run.workflowId])
  expect((await client.list({ status: 'completed', limit: 1000 })).some((r) => r.workflowId === run.workflowId)).toBe(true)
  expect(e.running).toBe(0)
})

it('a client start with an input the schema refuses fails the run with VALIDATION_FAILED before the body runs; the workflow timeout applies', async () => {
  const name = uid('strict')
  let bodyRuns = 0
  const wf = Workflow.create(name)
    .db(db)
    .input(z.object({ amount: z.number().positive() }))
    .timeout('1h')
    .define(async () => ++bodyRuns)
    .build()
  await engine([wf])
  await expect(client.result((await client.start(name, { amount: -5 })).workflowId, '30s')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
  expect(bodyRuns).toBe(0)
  const ok = await client.start(name, { amount: 5 })
  expect(await ok.result('30s')).toBe(1)
  const info = await ok.status()
  expect(info.deadlineAt!.getTime() - info.createdAt.getTime()).toBe(3_600_000)
  // A value that cannot round-trip is refused at start, with nothing stored.
  await expect(client.start(name, { amount: Number.NaN }, { workflowId: `${name}-nan` })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', status: 400 })
  expect(await client.get(`${name}-nan`)).toBeUndefined()
})

it('the same id with the same input answers the existing run (any key order); another input is a 409 WORKFLOW_ID_CONFLICT, from the client and from the workflow', async () => {
  const name = uid('idem')
  let runs = 0
  const wf = Workflow.create(name)
    .db(db)
    .define(async (ctx, input: unknown) => ctx.step('s', () => ({ n: ++runs, input })))
    .build()
  await engine([wf])
  const id = `${name}-1`
  const a = await client.start(name, { a: 1, b: { c: [1, 2], d: 'x' } }, { workflowId: id })
  const b = await client.start(name, { b: { d: 'x', c: [1, 2] }, a: 1 }, { workflowId: id })
  expect([a.created, b.created]).toEqual([true, false])
  const c = await wf.start({ a: 1, b: { c: [1, 2], d: 'x' } }, { workflowId: id })
  expect(c.created).toBe(false)
  const conflict = await client.start(name, { a: 2, b: { c: [1, 2], d: 'x' } }, { workflowId: id }).catch((e: unknown) => e)
  expect(conflict).toBeInstanceOf(ConflictError)
  expect(conflict).toMatchObject({ code: 'WORKFLOW_ID_CONFLICT', status: 409 })
  await expect(wf.start({ a: 1 }, { workflowId: id })).rejects.toMatchObject({ code: 'WORKFLOW_ID_CONFLICT', status: 409 })
  await expect(client.start(name, undefined, { workflowId: id })).rejects.toMatchObject({ code: 'WORKFLOW_ID_CONFLICT' })
  await expect(client.start(uid('other'), { a: 1 }, { workflowId: id })).rejects.toMatchObject({ code: 'WORKFLOW_ID_IN_USE', status: 409 })
  expect(await a.result('30s')).toEqual({ n: 1, input: { a: 1, b: { c: [1, 2], d: 'x' } } })
  expect(runs).toBe(1)
})

it('cancel and signal: a live run is cancelled; a finished one answers 409 WORKFLOW_NOT_RUNNING; an unknown one 404', async () => {
  const name = uid('cancel')
  const wf = Workflow.create(name)
    .db(db)
    .define(async (ctx) => {
      await ctx.waitForSignal('go')
      return 'went'
    })
    .build()
  await engine([wf])
  const live = await client.start(name, undefined)
  await waitFor(async () => (await client.steps(live.workflowId)).length === 1, { what: 'the run to wait for its signal' })
  await client.cancel(live.workflowId)
  await expect(live.result('30s')).rejects.toMatchObject({ code: 'WORKFLOW_CANCELLED' })
  await expect(client.cancel(live.workflowId)).rejects.toMatchObject({ code: 'WORKFLOW_NOT_RUNNING', status: 409, details: { status: 'cancelled' } })

  const done = await client.start(name, undefined)
  await client.signal(done.workflowId, 'go')
  expect(await done.result('30s')).toBe('went')
  await expect(done.cancel()).rejects.toMatchObject({ code: 'WORKFLOW_NOT_RUNNING', status: 409, details: { status: 'completed' } })
  await expect(wf.cancel(done.workflowId)).rejects.toMatchObject({ code: 'WORKFLOW_NOT_RUNNING', status: 409 })
  await expect(client.signal(done.workflowId, 'go')).rejects.toMatchObject({ code: 'WORKFLOW_NOT_RUNNING', status: 409 })
  expect((await client.get(done.workflowId))?.status).toBe('completed')

  await expect(client.cancel('no-such-run')).rejects.toMatchObject({ code: 'WORKFLOW_RUN_NOT_FOUND', status: 404 })
  await expect(client.signal('no-such-run', 'go')).rejects.toMatchObject({ code: 'WORKFLOW_RUN_NOT_FOUND', status: 404 })
  await expect(client.result('no-such-run', '1s')).rejects.toMatchObject({ code: 'WORKFLOW_RUN_NOT_FOUND' })
  await expect(client.handle('no-such-run').status()).rejects.toMatchObject({ code: 'WORKFLOW_RUN_NOT_FOUND' })
})

it('a failed run rethrows its error through the client; result times out with WORKFLOW_RESULT_TIMEOUT while a run waits', async () => {
  const name = uid('fails')
  const wf = Workflow.create(name)
    .db(db)
    .input(z.object({ fail: z.boolean() }))
    .define(async (ctx, input) => {
      if (input.fail) await ctx.step('boom', () => Promise.reject(new ConflictError('NOPE', 'no')))
      return ctx.waitForSignal('never')
    })
    .build()
  await engine([wf])
  await expect(client.result((await client.start(name, { fail: true })).workflowId, '30s')).rejects.toMatchObject({ code: 'NOPE', status: 409 })
  const waiting = await client.start(name, { fail: false })
  await expect(waiting.result(300)).rejects.toMatchObject({ code: 'WORKFLOW_RESULT_TIMEOUT' })
  await waiting.cancel()
})

it('refuses a bad workflow name and a bad id before touching the database', async () => {
  await expect(client.start('runs', 1)).rejects.toMatchObject({ code: 'INVALID_WORKFLOW_NAME' })
  await expect(client.start('has space', 1)).rejects.toMatchObject({ code: 'INVALID_WORKFLOW_NAME' })
  await expect(client.start('ok', 1, { workflowId: '' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', status: 400 })
  expect(() => new WorkflowClient({ db: undefined as unknown as Database })).toThrow(/needs a Database/)
})
