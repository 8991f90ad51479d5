import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { TerminalError, Workflow, WorkflowCancelledError, WorkflowEngine, type Database, type WorkflowEngineOptions } from '@onepipe/sdk'
import { silentLogger } from '@onepipe/core'
import { testDatabase, waitFor } from '@onepipe/testing'

let db: Database
let cleanup: () => Promise<void>
const engines: WorkflowEngine[] = []
let n = 0
const uid = (p: string) => `${p}-${++n}-${Math.random().toString(36).slice(2, 8)}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()))
})
afterAll(async () => {
  await cleanup()
})

// Fast heartbeat and polling, but a stale limit no loaded machine reaches by
// accident: a takeover only happens in the tests that set a short one.
const FAST = { heartbeat: 100, staleAfter: '5s', poll: 50, logger: silentLogger } as const

async function engine(workflows: NonNullable<WorkflowEngineOptions['workflows']>, o: Partial<WorkflowEngineOptions> = {}): Promise<WorkflowEngine> {
  const e = new WorkflowEngine({ db, ...FAST, ...o, workflows })
  engines.push(e)
  await e.start()
  return e
}

const until = <T>(fn: () => Promise<T>, what?: string) => waitFor(fn, { what })

function latch(): { wait: Promise<void>; open: () => void } {
  let open!: () => void
  const wait = new Promise<void>((r) => (open = r))
  return { wait, open }
}

describe('steps and replay', () => {
  it('records each step once, gives loop steps stable ids, and returns recorded results on replay', async () => {
    const calls: Record<string, number> = {}
    let bodyRuns = 0
    const hit = (k: string) => (calls[k] = (calls[k] ?? 0) + 1)
    const wf = Workflow.create(uid('loop'))
      .db(db)
      .input(z.object({ items: z.array(z.number()) }))
      .define(async (ctx, input) => {
        bodyRuns++
        const first = await ctx.step('first', () => {
          hit('first')
          return { at: Date.now() }
        })
        let sum = 0
        for (const i of input.items) sum += await ctx.step('item', () => (hit(`item${i}`), i * 10))
        await ctx.sleep(150)
        const last = await ctx.step('last', () => (hit('last'), 'done'))
        return { first: first.at, sum, last }
      })
      .build()
    const e = await engine([wf])
    const h = await wf.start({ items: [1, 2, 3] })
    const out = await h.result('20s')
    expect(out.sum).toBe(60)
    expect(calls).toEqual({ first: 1, item1: 1, item2: 1, item3: 1, last: 1 })
    expect(bodyRuns).toBe(2) // replayed after the sleep
    const steps = await wf.steps(h.workflowId)
    expect(steps.map((s) => s.stepId).sort()).toEqual(['$sleep', 'first', 'item', 'item#2', 'item#3', 'last'].sort())
    expect(steps.find((s) => s.stepId === 'item#3')?.result).toBe(30)
    expect(e.running).toBe(0)
  })

  it('start is idempotent by workflowId: the same id returns the existing run and the body runs once', async () => {
    let runs = 0
    const wf = Workflow.create(uid('idem'))
      .db(db)
      .define(async (ctx) => ctx.step('s', () => ++runs))
      .build()
    await engine([wf])
    const id = uid('run')
    const [a, b] = await Promise.all([wf.start(undefined, { workflowId: id }), wf.start(undefined, { workflowId: id })])
    expect([a.created, b.created].sort()).toEqual([false, true])
    expect(await a.result('20s')).toBe(1)
    const c = await wf.start(undefined, { workflowId: id })
    expect(c.created).toBe(false)
    expect(await c.result('20s')).toBe(1)
    expect(runs).toBe(1)
  })

  it('validates input at start (ValidationError, no row written) and output before completing', async () => {
    const name = uid('valid')
    const wf = Workflow.create(name)
      .db(db)
      .input(z.object({ amount: z.number().positive() }))
      .output(z.object({ ok: z.literal(true) }))
      .define(async (_ctx, input) => ({ ok: input.amount < 100 }) as { ok: true })
      .build()
    await engine([wf])
    await expect(wf.start({ amount: -1 }, { workflowId: 'bad-1' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', status: 400 })
    await expect(wf.start({ amount: 'x' } as never)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM _onepipe_workflows WHERE workflow_name = $1', [name])
    expect(row?.n).toBe(0)
    expect(await (await wf.start({ amount: 5 })).result('20s')).toEqual({ ok: true })
    const bad = await wf.start({ amount: 500 })
    await expect(bad.result('20s')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    expect((await bad.status()).status).toBe('failed')
  })
})

describe('durable time', () => {
  it('a sleep stores an absolute wake time; a run stopped mid-sleep wakes at that time on another engine, holding no process meanwhile', async () => {
    let engineNo = 1
    const wf = Workflow.create(uid('nap'))
      .db(db)
      .define(async (ctx) => {
        await ctx.step('before', () => 1)
        await ctx.sleep(2500)
        return ctx.step('after', () => engineNo)
      })
      .build()
    const e1 = await engine([wf])
    const h = await wf.start(undefined)
    // Parked: the run is given back to the database (a wake time, no owner) and this process holds nothing.
    const info = await until(async () => {
      const i = await h.status()
      return i.wakeAt !== undefined && e1.running === 0 && i
    }, 'the run to park')
    expect(info.status).toBe('running')
    // The sleep step is recorded in the same statement that parked the run: both name the same wake time.
    const sleeps = (await wf.steps(h.workflowId)).filter((x) => x.stepId === '$sleep')
    expect(sleeps).toHaveLength(1)
    const wakeAt = sleeps[0]!.result as number
    expect(info.wakeAt!.getTime()).toBe(wakeAt)
    await e1.stop()
    engineNo = 2
    await engine([wf])
    expect(await h.result('20s')).toBe(2)
    const done = await h.status()
    expect(done.completedAt!.getTime()).toBeGreaterThanOrEqual(wakeAt)
    // Claimed twice in all (fence 2): by e1, then once by e2 at the wake time. A sleep that
    // restarted on e2 would have parked the run again and taken a third claim.
    const [row] = await db.query<{ fence: number }>('SELECT fence FROM _onepipe_workflows WHERE workflow_id = $1', [h.workflowId])
    expect(Number(row!.fence)).toBe(2)
    expect((await wf.steps(h.workflowId)).filter((x) => x.stepId === '$sleep').map((x) => x.result)).toEqual([wakeAt])
  })

  it('sleepUntil waits for an absolute date; the run timeout fails a run that sleeps past it', async () => {
    const wf = Workflow.create(uid('until'))
      .db(db)
      .input(z.string())
      .define(async (ctx, at) => {
        await ctx.sleepUntil(new Date(at))
        return 'woke'
      })
      .build()
    const late = Workflow.create(uid('late'))
      .db(db)
      .timeout(300)
      .define(async (ctx) => {
        await ctx.sleep('5s')
        return ctx.step('never', () => 'ran')
      })
      .build()
    await engine([wf, late])
    const [now] = await db.query<{ t: Date }>('SELECT now() AS t')
    const h = await wf.start(new Date(now!.t.getTime() + 300).toISOString())
    expect(await h.result('20s')).toBe('woke')
    const l = await late.start(undefined)
    await expect(l.result('20s')).rejects.toMatchObject({ code: 'WORKFLOW_TIMEOUT' })
    expect((await late.steps(l.workflowId)).map((s) => s.stepId)).toEqual(['$sleep'])
  })
})

describe('ownership', () => {
  it('another engine takes over a run whose heartbeat went stale; the fenced-off owner’s late step result is refused', async () => {
    const slowA = latch()
    let calls = 0
    const wf = Workflow.create(uid('fence'))
      .db(db)
      .define(async (ctx) => {
        const who = await ctx.step('work', async () => {
          calls++
          if (calls === 1) {
            await slowA.wait
            return 'A'
          }
          return 'B'
        })
        return who
      })
      .build()
    const warns: string[] = []
    const log = { ...silentLogger, warn: (_o: object | string, m?: string) => void warns.push(m ?? ''), child: () => log }
    // A never renews within B's stale limit: it stands in for a paused process.
    await engine([wf], { instanceId: 'A', heartbeat: '10s', staleAfter: '20s', logger: log })
    const h = await wf.start(undefined)
    await until(async () => calls === 1)
    const b = new WorkflowEngine({ db, ...FAST, staleAfter: '1s', instanceId: 'B', workflows: [wf] })
    engines.push(b)
    await b.start()
    expect(await h.result('20s')).toBe('B')
    slowA.open()
    await until(async () => warns.some((w) => w.includes('refused')))
    const steps = await wf.steps(h.workflowId)
    expect(steps).toHaveLength(1)
    expect(steps[0]!.result).toBe('B')
    expect((await h.status()).status).toBe('completed')
  })
})

describe('leases during long steps and shutdown', () => {
  it('the owner keeps renewing its lease during a step longer than the stale limit, so no other engine takes the run', async () => {
    let calls = 0
    const wf = Workflow.create(uid('long'))
      .db(db)
      .define(async (ctx) =>
        ctx.step('long', async () => {
          calls++
          await sleep(3500) // more than twice the stale limit
          return 'ok'
        }),
      )
      .build()
    const lease = { heartbeat: 100, staleAfter: '1500ms' } as const
    await engine([wf], { instanceId: 'owner', ...lease })
    const h = await wf.start(undefined)
    await engine([wf], { instanceId: 'other', ...lease })
    expect(await h.result('20s')).toBe('ok')
    expect(calls).toBe(1)
    const [row] = await db.query<{ fence: number }>('SELECT fence FROM _onepipe_workflows WHERE workflow_id = $1', [h.workflowId])
    expect(row!.fence).toBe(1)
  })

  it('stop() lets the step in flight be recorded and hands the run back at once, so another engine continues it without waiting for the lease to go stale', async () => {
    const ran: string[] = []
    const wf = Workflow.create(uid('handback'))
      .db(db)
      .define(async (ctx) => {
        await ctx.step('one', async () => {
          ran.push('one')
          await sleep(300)
        })
        await ctx.step('two', () => void ran.push('two'))
        return 'done'
      })
      .build()
    const first = await engine([wf], { instanceId: 'first', staleAfter: '1m', heartbeat: '10s' })
    const h = await wf.start(undefined)
    await until(async () => ran.length === 1)
    await first.stop()
    const [row] = await db.query<{ owner: string | null }>('SELECT owner FROM _onepipe_workflows WHERE workflow_id = $1', [h.workflowId])
    expect(row!.owner).toBeNull()
    expect((await wf.steps(h.workflowId)).map((s) => s.stepId)).toEqual(['one'])
    // With a one-minute stale limit, a run finished within result()'s deadline was handed back, not taken over.
    await engine([wf], { instanceId: 'second' })
    expect(await h.result('20s')).toBe('done')
    expect(ran).toEqual(['one', 'two'])
  })

  it('stop() keeps renewing the lease of a run whose step is still going, so no other engine takes it over during the drain', async () => {
    const ran: string[] = []
    const gate = latch()
    const wf = Workflow.create(uid('drain'))
      .db(db)
      .define(async (ctx) => {
        await ctx.step('long', async () => {
          ran.push('long')
          await gate.wait
        })
        await ctx.step('after', () => void ran.push('after'))
        return 'done'
      })
      .build()
    const first = await engine([wf], { instanceId: 'draining', staleAfter: 1000, heartbeat: 100, shutdownTimeout: '1m' })
    const h = await wf.start(undefined)
    await until(async () => ran.length === 1)
    await engine([wf], { instanceId: 'other', staleAfter: 1000, heartbeat: 100 })
    const stopped = first.stop()
    // Three stale limits pass on the database clock while the step is still going.
    const [t0] = await db.query<{ t: Date }>('SELECT now() AS t')
    await until(async () => (await db.query<{ past: boolean }>(`SELECT now() > $1::timestamptz + interval '3 seconds' AS past`, [t0!.t]))[0]!.past)
    expect((await wf.get(h.workflowId))?.owner).toBe('draining')
    gate.open()
    await stopped
    expect(await h.result('20s')).toBe('done')
    expect(ran).toEqual(['long', 'after'])
  })
})

describe('cancel', () => {
  it('stops the run before its next step; the status stays cancelled even when a step in flight finishes', async () => {
    const gate = latch()
    const ran: string[] = []
    const wf = Workflow.create(uid('cancel'))
      .db(db)
      .define(async (ctx) => {
        await ctx.step('one', async () => {
          ran.push('one')
          await gate.wait
        })
        await ctx.step('two', () => void ran.push('two'))
        return 'finished'
      })
      .build()
    await engine([wf])
    const h = await wf.start(undefined)
    await until(async () => ran.length === 1)
    await h.cancel()
    gate.open()
    await expect(h.result('20s')).rejects.toBeInstanceOf(WorkflowCancelledError)
    await sleep(200)
    expect(ran).toEqual(['one'])
    expect((await h.status()).status).toBe('cancelled')
    await expect(h.signal('x', 1)).rejects.toMatchObject({ code: 'WORKFLOW_NOT_RUNNING' })
  })

  it('cancelling a sleeping run keeps it from ever waking', async () => {
    const ran: string[] = []
    const wf = Workflow.create(uid('cancel-sleep'))
      .db(db)
      .define(async (ctx) => {
        await ctx.sleep(300)
        await ctx.step('after', () => void ran.push('after'))
      })
      .build()
    await engine([wf])
    const h = await wf.start(undefined)
    const { wakeAt } = await until(async () => {
      const i = await h.status()
      return i.wakeAt !== undefined && i
    }, 'the run to park')
    await h.cancel()
    // Past the wake time by several polls of the engine: a run that could still wake would have run its step.
    await until(async () => (await db.query<{ now: Date }>('SELECT now() AS now'))[0]!.now.getTime() > wakeAt!.getTime() + 500, 'the wake time to pass')
    expect(ran).toEqual([])
    expect((await h.status()).status).toBe('cancelled')
  })
})

describe('cancel with children', () => {
  it('cancelling a parent cancels its live children; a cancelled child fails its waiting parent with WORKFLOW_CANCELLED', async () => {
    const child = Workflow.create(uid('kid'))
      .db(db)
      .define(async (ctx) => ctx.waitForSignal('never'))
      .build()
    const parent = Workflow.create(uid('mom'))
      .db(db)
      .define(async (ctx) => ctx.child(child, undefined, { workflowId: `${ctx.workflowId}-kid` }))
      .build()
    await engine([parent, child])
    const p1 = await parent.start(undefined)
    await until(async () => (await child.get(`${p1.workflowId}-kid`))?.status === 'running')
    await p1.cancel()
    expect((await child.get(`${p1.workflowId}-kid`))?.status).toBe('cancelled')
    await expect(p1.result('20s')).rejects.toMatchObject({ code: 'WORKFLOW_CANCELLED' })

    const p2 = await parent.start(undefined)
    await until(async () => (await child.get(`${p2.workflowId}-kid`))?.status === 'running')
    await child.cancel(`${p2.workflowId}-kid`)
    await expect(p2.result('20s')).rejects.toMatchObject({ code: 'WORKFLOW_CANCELLED' })
    expect((await p2.status()).status).toBe('failed')
  })
})

describe('errors and retries', () => {
  it('retries a retryable step error with backoff, then records the success and its attempts', async () => {
    let tries = 0
    const wf = Workflow.create(uid('retry'))
      .db(db)
      .retry({ attempts: 4, backoff: 'exponential', delay: 20 })
      .define(async (ctx) =>
        ctx.step('flaky', () => {
          if (++tries < 3) throw new Error('try again')
          return tries
        }),
      )
      .build()
    await engine([wf])
    const h = await wf.start(undefined)
    expect(await h.result('20s')).toBe(3)
    const [s] = await wf.steps(h.workflowId)
    expect(s).toMatchObject({ stepId: 'flaky', status: 'completed', attempts: 3 })
  })

  it('a step’s own retry policy overrides the workflow’s; a retryable error after the last attempt fails the run', async () => {
    let tries = 0
    const wf = Workflow.create(uid('override'))
      .db(db)
      .retry({ attempts: 5, delay: 10 })
      .define(async (ctx) =>
        ctx.step(
          'once',
          () => {
            tries++
            throw new Error('provider down')
          },
          { retry: { attempts: 2, backoff: 'fixed', delay: 10 } },
        ),
      )
      .build()
    await engine([wf])
    const h = await wf.start(undefined)
    await expect(h.result('20s')).rejects.toMatchObject({ message: 'provider down' })
    expect(tries).toBe(2)
    expect((await wf.steps(h.workflowId))[0]).toMatchObject({ status: 'failed', attempts: 2 })
  })

  it('a TerminalError fails the run at once; replay reports the same recorded failure without running the step again', async () => {
    let charges = 0
    const wf = Workflow.create(uid('terminal'))
      .db(db)
      .retry({ attempts: 5, delay: 10 })
      .define(async (ctx) => {
        let code = 'none'
        try {
          await ctx.step('charge', () => {
            charges++
            throw new TerminalError('CARD_DECLINED', 'The card was declined')
          })
        } catch (e) {
          code = (e as { code: string }).code
        }
        await ctx.sleep(100) // forces a replay of the failed step
        await ctx.step('compensate', () => code)
        throw new TerminalError(code, 'order failed')
      })
      .build()
    await engine([wf])
    const h = await wf.start(undefined)
    await expect(h.result('20s')).rejects.toMatchObject({ code: 'CARD_DECLINED', message: 'order failed' })
    await expect(h.result('20s')).rejects.toMatchObject({ code: 'CARD_DECLINED' })
    expect(charges).toBe(1)
    const steps = await wf.steps(h.workflowId)
    expect(steps.find((s) => s.stepId === 'charge')).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'CARD_DECLINED' } })
    expect(steps.find((s) => s.stepId === 'compensate')?.result).toBe('CARD_DECLINED')
    expect((await h.status()).status).toBe('failed')
  })
})

describe('signals, children, parallel, emit', () => {
  it('queues signals: each is consumed by exactly one wait, in order; a wait times out with null', async () => {
    const wf = Workflow.create(uid('sig'))
      .db(db)
      .define(async (ctx) => {
        const a = await ctx.waitForSignal<number>('n')
        const b = await ctx.waitForSignal<number>('n')
        const c = await ctx.waitForSignal<number>('n', { timeout: 200 })
        return [a, b, c]
      })
      .build()
    await engine([wf])
    const h = await wf.start(undefined)
    await h.signal('n', 1)
    await h.signal('n', 2)
    expect(await h.result('20s')).toEqual([1, 2, null])
  })

  it('a signal sent while the run waits wakes it', async () => {
    const wf = Workflow.create(uid('sig-wake'))
      .db(db)
      .define(async (ctx) => ctx.waitForSignal<{ ok: boolean }>('approve'))
      .build()
    await engine([wf])
    const h = await wf.start(undefined)
    await until(async () => (await wf.steps(h.workflowId)).some((s) => s.status === 'waiting'))
    await h.signal('approve', { ok: true })
    expect(await h.result('20s')).toEqual({ ok: true })
  })

  it('runs child workflows, parallel steps, and emits to a flow exactly once across replay', async () => {
    const appended: unknown[] = []
    const flow = { name: 'events', append: async (d: unknown) => void appended.push(d) }
    const child = Workflow.create(uid('child'))
      .db(db)
      .input(z.number())
      .define(async (ctx, x) => ctx.step('double', () => x * 2))
      .build()
    const parent = Workflow.create(uid('parent'))
      .db(db)
      .input(z.number())
      .define(async (ctx, x) => {
        const [a, b, c] = await ctx.parallel([() => ctx.step('p', () => x + 1), () => ctx.step('p', () => x + 2), ctx.step('q', () => x + 3)])
        await ctx.emit(flow, { sum: a + b + c })
        const d = await ctx.child(child, a)
        await ctx.sleep(50)
        return { a, b, c, d }
      })
      .build()
    await engine([parent, child])
    const h = await parent.start(1)
    expect(await h.result('20s')).toEqual({ a: 2, b: 3, c: 4, d: 4 })
    expect(appended).toEqual([{ sum: 9 }])
    const kids = await child.list()
    expect(kids).toHaveLength(1)
    expect(kids[0]).toMatchObject({ parentId: h.workflowId, status: 'completed', output: 4 })
  })
})

describe('engine and component', () => {
  it('runs started without a local engine are claimed by an engine started later; recover() runs them too', async () => {
    const wf = Workflow.create(uid('later'))
      .db(db)
      .define(async (ctx) => ctx.step('s', () => 'ok'))
      .build()
    const h = await wf.start(undefined)
    expect((await h.status()).status).toBe('pending')
    await engine([wf])
    expect(await h.result('20s')).toBe('ok')
    expect((await wf.list({ status: 'completed' })).map((r) => r.workflowId)).toEqual([h.workflowId])
  })

  it('recover() starts an engine in this process and runs waiting runs', async () => {
    const wf = Workflow.create(uid('recover'))
      .db(db)
      .define(async (ctx) => ctx.step('s', () => 'recovered'))
      .build()
    const h = await wf.start(undefined)
    await wf.recover()
    expect(await h.result('20s')).toBe('recovered')
    await wf.detach()
  })

  it('attach(rt) uses rt.db when .db() was not given and detach() stops the engine', async () => {
    const wf = Workflow.create(uid('attached'))
      .input(z.number())
      .define(async (ctx, x) => ctx.step('s', () => x + 1))
      .build()
    const ac = new AbortController()
    await wf.attach({ instanceId: 'test', db, cache: undefined as never, logger: silentLogger, signal: ac.signal })
    expect(wf.kind).toBe('workflow')
    expect(await (await wf.start(1)).result('20s')).toBe(2)
    await wf.detach()
  })
})
