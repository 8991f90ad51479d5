import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, stderrLogger, type RuntimeContext } from '@onepipe/core'
import { ControlPlane } from '@onepipe/pipelines'
import { Hono } from 'hono'
import { startPlane, type Json, type Plane } from './helpers.js'

let p: Plane
beforeAll(async () => {
  p = await startPlane({ sweep: '100ms' })
})
afterAll(async () => {
  await p.cleanup()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function create(handler: string, n: number, options: Record<string, unknown> = {}): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const r = await p.call(p.keyA, 'POST', '/pipelines', { name: `p${i}`, stages: [{ stageName: 's', stageHandlerName: handler, options }] })
    expect(r.status).toBe(201)
    ids.push(r.body.pipelineId)
  }
  return ids
}

async function pull(handler: string, max: number, waitMs: number): Promise<Json[]> {
  const r = await p.call(p.keyA, 'POST', '/jobs/pull', { handlers: [handler], max, waitMs })
  if (r.status !== 200 && r.status !== 204) throw new Error(`pull: ${r.status} ${JSON.stringify(r.body)}`)
  return r.status === 204 ? [] : (r.body.jobs as Json[])
}

const ack = (executionId: string, status: 'completed' | 'failed') =>
  p.call(p.keyA, 'POST', '/jobs/ack', { executionId, status, ...(status === 'failed' ? { error: { message: 'boom', retryable: false } } : {}) })

describe('setting policies', () => {
  it('PUT checks the body and answers 400 naming every bad field', async () => {
    const bad = await p.call(p.keyA, 'PUT', '/handlers/pol.bad/policy', { concurrency: 0, rate: { perSecond: -1 }, breaker: { failureRate: 2, window: 'soon', cooldown: '1s' }, extra: 1 })
    expect(bad.status).toBe(400)
    const paths = (bad.body.error.details.issues as { path: string }[]).map((i) => i.path)
    expect(paths).toEqual(expect.arrayContaining(['concurrency', 'rate.perSecond', 'breaker.failureRate', 'breaker.minCalls', 'breaker.window']))
    expect((await p.call(p.keyA, 'PUT', '/handlers/9nope/policy', { concurrency: 1 })).status).toBe(400)
    expect((await p.call(p.keyA, 'GET', '/handlers/pol.bad/policy')).body).toEqual({ handler: 'pol.bad', appliesTo: null, policy: null, state: null })
  })

  it("PUT and GET are the caller's application's; an empty policy removes it", async () => {
    const put = await p.call(p.keyA, 'PUT', '/handlers/pol.rt/policy', { concurrency: 4, rate: { perSecond: 10 }, breaker: { failureRate: 0.5, minCalls: 20, window: '1m', cooldown: '30s' } })
    expect(put.status).toBe(200)
    expect(put.body).toMatchObject({
      handler: 'pol.rt',
      appliesTo: 'application',
      policy: { concurrency: 4, rate: { perSecond: 10, burst: 10 }, breaker: { failureRate: 0.5, minCalls: 20, window: 60_000, cooldown: 30_000 } },
      state: { running: 0, tokens: 10, breaker: 'closed', breakerUntil: null },
    })
    expect((await p.call(p.keyA, 'GET', '/handlers/pol.rt/policy')).body.policy.concurrency).toBe(4)
    expect((await p.call(p.keyB, 'GET', '/handlers/pol.rt/policy')).body.policy).toBeNull()
    const off = await p.call(p.keyA, 'PUT', '/handlers/pol.rt/policy', {})
    expect(off.body.policy).toBeNull()
  })

  it('a builder policy applies to every application; an application’s own takes precedence', async () => {
    expect(() => ControlPlane.create().handlerPolicy('pol.x', { concurrency: 0 })).toThrow(ConfigError)
    expect(() => ControlPlane.create().handlerPolicy('pol.x', { breaker: { failureRate: 0.5, minCalls: 1, window: 'later', cooldown: '1s' } })).toThrow(/breaker\.window/)
    const other = ControlPlane.create().db(p.db).auth(p.auth).port(false).handlerPolicy('pol.all', { concurrency: 1 }).build()
    await other.start()
    try {
      await p.cp.policies.refresh()
      expect((await p.call(p.keyA, 'GET', '/handlers/pol.all/policy')).body).toMatchObject({ appliesTo: 'all', policy: { concurrency: 1 } })
      await p.call(p.keyB, 'PUT', '/handlers/pol.all/policy', { concurrency: 2 })
      expect((await p.call(p.keyB, 'GET', '/handlers/pol.all/policy')).body).toMatchObject({ appliesTo: 'application', policy: { concurrency: 2 } })
      await create('pol.all', 3)
      expect(await pull('pol.all', 5, 0)).toHaveLength(1)
      expect((await p.call(p.keyA, 'GET', '/handlers/pol.all/policy')).body).toMatchObject({ appliesTo: 'all', state: { running: 1 } })
    } finally {
      await other.stop()
    }
  })

  it('operator routes read and set any application’s policy, and the all-applications one', async () => {
    const app = new Hono()
    p.cp.routes(app, { db: p.db, logger: stderrLogger, signal: new AbortController().signal } as unknown as RuntimeContext)
    const put = await app.request(`/__onepipe/pipelines/handlers/${p.appA}/pol.op/policy`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ concurrency: 7 }) })
    expect(put.status).toBe(200)
    expect((await p.call(p.keyA, 'GET', '/handlers/pol.op/policy')).body.policy.concurrency).toBe(7)
    const star = await app.request('/__onepipe/pipelines/handlers/*/pol.op2/policy', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ rate: { perSecond: 3 } }) })
    expect(((await star.json()) as Json).appliesTo).toBe('all')
    expect((await p.call(p.keyB, 'GET', '/handlers/pol.op2/policy')).body.policy.rate).toEqual({ perSecond: 3, burst: 3 })
    const bad = await app.request(`/__onepipe/pipelines/handlers/${p.appA}/pol.op/policy`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ concurrency: 'x' }) })
    expect(bad.status).toBe(400)
  })
})

describe('enforcement', () => {
  it('concurrency: no more running than the limit; an ack wakes a parked pull', async () => {
    await p.call(p.keyA, 'PUT', '/handlers/pol.conc/policy', { concurrency: 2 })
    await create('pol.conc', 5)
    const first = await pull('pol.conc', 10, 0)
    expect(first).toHaveLength(2)
    expect(await pull('pol.conc', 10, 100)).toHaveLength(0)
    const parked = pull('pol.conc', 10, 10_000)
    await sleep(200)
    const t0 = Date.now()
    await ack(first[0].executionId, 'completed')
    const woken = await parked
    expect(woken).toHaveLength(1)
    expect(Date.now() - t0).toBeLessThan(4000)
    // Handlers without a policy in the same pull are not held back.
    await create('pol.free', 3)
    const r = await p.call(p.keyA, 'POST', '/jobs/pull', { handlers: ['pol.conc', 'pol.free'], max: 10, waitMs: 0 })
    expect((r.body.jobs as Json[]).map((j: Json) => j.handler as string).sort()).toEqual(['pol.free', 'pol.free', 'pol.free'])
  })

  it('rate: the bucket hands out its burst, then one job per 1/rate; a parked pull is woken when a token returns', async () => {
    await p.call(p.keyA, 'PUT', '/handlers/pol.rate/policy', { rate: { perSecond: 4, burst: 2 } })
    await create('pol.rate', 6)
    const t0 = Date.now()
    expect(await pull('pol.rate', 10, 0)).toHaveLength(2)
    let got = 2
    while (got < 6) got += (await pull('pol.rate', 10, 5000)).length
    // 4 more at 4/s after a burst of 2: about 1 s; each parked pull answered when its token came.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(850)
    expect(Date.now() - t0).toBeLessThan(8000)
  })

  it('breaker: opens above the threshold, hands out nothing until the cooldown, then one probe whose success closes it', async () => {
    await p.call(p.keyA, 'PUT', '/handlers/pol.brk/policy', { breaker: { failureRate: 0.5, minCalls: 4, window: '1m', cooldown: '1500ms' } })
    await create('pol.brk', 4, { maxRetries: 0 })
    const jobs = await pull('pol.brk', 4, 0)
    expect(jobs).toHaveLength(4)
    await ack(jobs[0].executionId, 'completed')
    await ack(jobs[1].executionId, 'failed')
    expect((await p.call(p.keyA, 'GET', '/handlers/pol.brk/policy')).body.state).toMatchObject({ breaker: 'closed', windowCalls: 2, windowFailures: 1 })
    await ack(jobs[2].executionId, 'failed')
    expect((await p.call(p.keyA, 'GET', '/handlers/pol.brk/policy')).body.state.breaker).toBe('closed')
    await ack(jobs[3].executionId, 'failed')
    const opened = (await p.call(p.keyA, 'GET', '/handlers/pol.brk/policy')).body.state
    expect(opened.breaker).toBe('open')
    const until = Date.parse(opened.breakerUntil)
    await create('pol.brk', 3, { maxRetries: 0 })
    expect(await pull('pol.brk', 5, 300)).toHaveLength(0)
    const probe = await pull('pol.brk', 5, 10_000)
    expect(Date.now()).toBeGreaterThanOrEqual(until - 50)
    expect(probe).toHaveLength(1)
    expect((await p.call(p.keyA, 'GET', '/handlers/pol.brk/policy')).body.state.breaker).toBe('half_open')
    expect(await pull('pol.brk', 5, 300)).toHaveLength(0)
    await ack(probe[0].executionId, 'completed')
    expect((await p.call(p.keyA, 'GET', '/handlers/pol.brk/policy')).body.state).toMatchObject({ breaker: 'closed', windowCalls: 0 })
    expect(await pull('pol.brk', 5, 1000)).toHaveLength(2)
  })

  it('breaker: a failed probe opens it again; timeouts found by the watchdog count as failures', async () => {
    await p.call(p.keyA, 'PUT', '/handlers/pol.to/policy', { breaker: { failureRate: 1, minCalls: 2, window: '1m', cooldown: '800ms' } })
    await create('pol.to', 2, { maxRetries: 0, timeOut: 200 })
    expect(await pull('pol.to', 2, 0)).toHaveLength(2)
    const deadline = Date.now() + 10_000
    let state: Json
    do {
      await sleep(100)
      state = (await p.call(p.keyA, 'GET', '/handlers/pol.to/policy')).body.state
    } while (state.breaker !== 'open' && Date.now() < deadline)
    expect(state.breaker).toBe('open')
    await create('pol.to', 2, { maxRetries: 0 })
    const probe = await pull('pol.to', 2, 10_000)
    expect(probe).toHaveLength(1)
    await ack(probe[0].executionId, 'failed')
    const again = (await p.call(p.keyA, 'GET', '/handlers/pol.to/policy')).body.state
    expect(again.breaker).toBe('open')
    expect(Date.parse(again.breakerUntil)).toBeGreaterThan(Date.now() + 300)
  })
})
