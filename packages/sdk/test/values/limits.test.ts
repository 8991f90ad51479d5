import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Channel, Flow, MAX_VALUE_BYTES, PayloadTooLargeError, Signal, silentLogger, Workflow, WorkflowEngine, type Database } from '@onepipe/sdk'
import { MemoryStreamStore, StreamsClient, UnbrokenServer } from '@onepipe/streams'
import { testDatabase } from '@onepipe/testing'

// One documented limit for every value OnePipe stores (MAX_VALUE_BYTES, 1 MiB
// of JSON), the same on every store, and a body limit on every HTTP entry
// point: 413, nothing stored.
let db: Database
let cleanup: () => Promise<void>
const closers: (() => Promise<void>)[] = []
const server = new UnbrokenServer({ store: new MemoryStreamStore(), longPollTimeoutMs: 300, sweepIntervalMs: 0 })
const streams = () => new StreamsClient({ url: 'http://streams.test', fetch: ((u: string, i?: RequestInit) => server.app.request(u, i)) as typeof fetch })
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterAll(async () => {
  for (const c of closers) await c()
  await server.stop()
  await cleanup()
})

const big = () => ({ pad: 'x'.repeat(MAX_VALUE_BYTES) })
const justUnder = () => 'y'.repeat(MAX_VALUE_BYTES - 2)

describe('one value limit, the same on every store', () => {
  for (const where of ['database', 'streams server'] as const) {
    it(`a flow on the ${where} takes a value of exactly 1 MiB and refuses one byte more with a 413`, async () => {
      const f = where === 'database' ? Flow.create(`lim-${where.length}`).db(db).build() : Flow.create('lim-s').streams(streams()).build()
      closers.push(() => f.close())
      await expect(f.append(big())).rejects.toBeInstanceOf(PayloadTooLargeError)
      await f.append(justUnder())
      expect((await f.read()).map((e) => (e.data as string).length)).toEqual([MAX_VALUE_BYTES - 2])
    })
  }

  it('signal values, workflow inputs, step results and channel inputs and results have the same limit', async () => {
    const s = Signal.create('lim').db(db).default<unknown>(0).build()
    closers.push(() => s.close())
    await expect(s.set(big())).rejects.toBeInstanceOf(PayloadTooLargeError)
    expect(await s.get()).toBe(0)

    const wf = Workflow.create('lim').db(db).define(async (ctx) => ctx.step('s', () => big())).build()
    const engine = new WorkflowEngine({ db, workflows: [wf], heartbeat: 100, poll: 50, logger: silentLogger })
    await engine.start()
    closers.push(() => engine.stop())
    await expect(wf.start(big(), { workflowId: 'too-big' })).rejects.toBeInstanceOf(PayloadTooLargeError)
    expect(await wf.get('too-big')).toBeUndefined()
    const h = await wf.start(undefined)
    await expect(h.result('20s')).rejects.toMatchObject({ code: 'INVALID_RESULT', status: 500 })

    const ch = Channel.create('lim').db(db).idempotency(() => 'k').handler((i) => i).build()
    closers.push(() => ch.close())
    await expect(ch.call(big())).rejects.toBeInstanceOf(PayloadTooLargeError)
    const out = Channel.create('lim-out').db(db).idempotency(() => 'k').handler(() => big()).build()
    closers.push(() => out.close())
    await expect(out.call({})).rejects.toMatchObject({ code: 'INVALID_RESULT', status: 500 })
    await expect(out.call({})).rejects.toMatchObject({ code: 'INVALID_RESULT', status: 500 })
  })
})

describe('every HTTP entry point refuses a 20 MiB body with 413 and stores nothing', () => {
  it('rpc, workflow start, signals to runs, flow appends and signal writes', async () => {
    const flow = Flow.create('lim-http').db(db).build()
    const sig = Signal.create('lim-http').db(db).default<unknown>(0).build()
    let ran = 0
    const ch = Channel.create('lim-http').db(db).handler(() => void ran++).build()
    const wf = Workflow.create('lim-http').db(db).define(async (ctx) => ctx.waitForSignal('go', { timeout: '1m' })).build()
    closers.push(() => flow.close(), () => sig.close(), () => ch.close())
    const app = new Hono()
    for (const c of [flow, sig, ch, wf]) c.routes(app)
    const run = await wf.start(undefined)
    const huge = JSON.stringify({ input: { pad: 'x'.repeat(20 * 1024 * 1024) } })
    const post = (path: string, method = 'POST') => app.request(path, { method, body: huge, headers: { 'content-type': 'application/json' } })
    for (const res of [
      await post('/rpc/lim-http'),
      await post('/__onepipe/workflows/lim-http/start'),
      await post(`/__onepipe/workflows/runs/${run.workflowId}/signal/go`),
      await post('/__onepipe/flows/lim-http/events'),
      await post('/__onepipe/signals/lim-http', 'PUT'),
    ]) {
      expect(res.status).toBe(413)
      expect(await res.json()).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } })
    }
    expect(ran).toBe(0)
    expect(await flow.read()).toEqual([])
    expect(await sig.read()).toEqual({ value: 0, version: 0 })
    expect((await wf.list()).map((r) => r.workflowId)).toEqual([run.workflowId])
    const detail = (await (await app.request(`/__onepipe/workflows/runs/${run.workflowId}`)).json()) as { pendingSignals: unknown[] }
    expect(detail.pendingSignals).toEqual([])
  })
})
