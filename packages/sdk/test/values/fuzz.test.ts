import fc from 'fast-check'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Channel, Flow, OnePipeError, Signal, silentLogger, ValidationError, Workflow, WorkflowEngine, type Database } from '@onepipe/sdk'
import { testDatabase } from '@onepipe/testing'

// Arbitrary values thrown at every place OnePipe stores one: each either
// reads back equal or is refused with a ValidationError; never a 500, never
// a stuck run, never a changed neighbour.
let db: Database
let cleanup: () => Promise<void>
const closers: (() => Promise<void>)[] = []
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterAll(async () => {
  for (const c of closers) await c()
  await cleanup()
})

const special = fc.constantFrom<unknown>(NaN, Infinity, -Infinity, -0, 'x\ud800', '\udc00y', 'a\u0000b', () => 1, Symbol('s'), 10n, new Date(0), undefined)
const leaf = fc.oneof(fc.anything({ withBigInt: true, withDate: true, withMap: true, withNullPrototype: true, withSparseArray: true, withUnicodeString: true, maxDepth: 2 }), special)
/** Values, deep nesting and cycles included. */
const values = fc.oneof(
  leaf,
  fc.array(leaf, { maxLength: 4 }),
  fc.dictionary(fc.string({ unit: 'binary', maxLength: 4 }), leaf, { maxKeys: 4 }),
  fc.integer({ min: 100, max: 300 }).map((depth) => {
    let v: unknown = 1
    for (let i = 0; i < depth; i++) v = { v }
    return v
  }),
  fc.constant(null).map(() => {
    const o: Record<string, unknown> = { a: 1 }
    o.self = o
    return o
  }),
)

function refusedOrEqual(outcome: PromiseSettledResult<unknown>, sent: unknown, readBack: () => unknown): void {
  if (outcome.status === 'rejected') {
    expect(outcome.reason).toBeInstanceOf(ValidationError)
    expect((outcome.reason as OnePipeError).retryable).toBe(false)
  } else expect(readBack()).toEqual(sent)
}

describe('fuzz: every store of a value', () => {
  it('flow append: each value reads back equal or is refused, and its valid neighbours in the batch are stored', async () => {
    const flow = Flow.create('fuzz-flow').db(db).build()
    closers.push(() => flow.close())
    await fc.assert(
      fc.asyncProperty(values, async (v) => {
        const head = await flow.head()
        const [before, mine, after] = await Promise.allSettled([flow.append({ n: 1 }), flow.append(v), flow.append({ n: 2 })])
        expect(before.status).toBe('fulfilled')
        expect(after.status).toBe('fulfilled')
        const stored = await flow.read({ offset: head })
        refusedOrEqual(mine, v, () => stored.find((e) => e.offset === (mine as PromiseFulfilledResult<{ offset: number }>).value.offset)?.data)
        expect(stored).toHaveLength(mine.status === 'fulfilled' ? 3 : 2)
      }),
      { numRuns: 150 },
    )
  })

  it('signal set: each value reads back equal or is refused, leaving the stored value as it was', async () => {
    const s = Signal.create('fuzz-signal').db(db).default<unknown>(0).build()
    closers.push(() => s.close())
    await fc.assert(
      fc.asyncProperty(values, async (v) => {
        const before = await s.read()
        const [r] = await Promise.allSettled([s.set(v)])
        const after = await s.read()
        if (r.status === 'rejected') expect(after).toEqual(before)
        refusedOrEqual(r, v, () => after.value)
      }),
      { numRuns: 150 },
    )
  })

  it('channel result: the first caller and a replay see the same value, or both get the same INVALID_RESULT', async () => {
    let next: unknown
    let runs = 0
    const ch = Channel.create('fuzz-ch').db(db).idempotency((i) => (i as { k: string }).k).handler(() => (runs++, next)).build()
    closers.push(() => ch.close())
    let k = 0
    await fc.assert(
      fc.asyncProperty(values, async (v) => {
        next = v
        const key = `k${++k}`
        const [first] = await Promise.allSettled([ch.call({ k: key })])
        const [replay] = await Promise.allSettled([ch.call({ k: key })])
        if (first.status === 'rejected') {
          expect(first.reason).toBeInstanceOf(ValidationError)
          expect(first.reason).toMatchObject({ code: 'INVALID_RESULT', status: 500 })
          expect(replay.status).toBe('rejected')
          expect((replay as PromiseRejectedResult).reason).toMatchObject({ code: 'INVALID_RESULT' })
        } else {
          expect(first.value).toEqual(v)
          expect((replay as PromiseFulfilledResult<unknown>).value).toStrictEqual(first.value)
        }
        expect(runs).toBe(k)
      }),
      { numRuns: 150 },
    )
  })

  it('step result: every run ends (completed with the value, or failed with INVALID_RESULT), none is left running', async () => {
    let next: unknown
    const wf = Workflow.create('fuzz-wf').db(db).define(async (ctx) => ctx.step('s', () => next)).build()
    const engine = new WorkflowEngine({ db, workflows: [wf], heartbeat: 100, poll: 50, logger: silentLogger })
    await engine.start()
    closers.push(() => engine.stop())
    await fc.assert(
      fc.asyncProperty(values, async (v) => {
        next = v
        const h = await wf.start(undefined)
        const out = await h.result('20s').then(
          (value) => ({ ok: true as const, value }),
          (error: unknown) => ({ ok: false as const, error }),
        )
        if (out.ok) expect(out.value).toEqual(v)
        else expect(out.error).toMatchObject({ code: 'INVALID_RESULT' })
        expect((await wf.get(h.workflowId))?.status).toBe(out.ok ? 'completed' : 'failed')
      }),
      { numRuns: 60 },
    )
  })

  it('over HTTP: a lone surrogate or NUL escaped in JSON is a 400, never a 500', async () => {
    const flow = Flow.create('fuzz-http').db(db).build()
    const sig = Signal.create('fuzz-http').db(db).default<unknown>(0).build()
    closers.push(() => flow.close(), () => sig.close())
    const app = new Hono()
    flow.routes(app)
    sig.routes(app)
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('"\\ud800"', '{"a":"x\\u0000"}', '["\\udfff"]', '{"\\ud83d":1}'), async (body) => {
        const post = await app.request('/__onepipe/flows/fuzz-http/events', { method: 'POST', body, headers: { 'content-type': 'application/json' } })
        expect(post.status).toBe(400)
        const put = await app.request('/__onepipe/signals/fuzz-http', { method: 'PUT', body, headers: { 'content-type': 'application/json' } })
        expect(put.status).toBe(400)
      }),
    )
    expect(await flow.read()).toEqual([])
  })
})
