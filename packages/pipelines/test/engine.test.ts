import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Pipeline } from '@onepipe/sdk'
import { diamond, startPlane, type Json, type Plane } from './helpers.js'

let p: Plane
const bp = Pipeline.create('blueprint').stage('analyze', { handler: 'vision.analyze' }).stage('bid', { handler: 'pricing.bid', dependsOn: ['analyze'] }).build()

beforeAll(async () => {
  p = await startPlane({ templates: [bp] })
})
afterAll(async () => {
  await p.cleanup()
})

async function pullOne(key: string, handlers: string[], waitMs = 5000): Promise<Json> {
  const r = await p.call(key, 'POST', '/jobs/pull', { handlers, max: 1, waitMs })
  expect(r.status).toBe(200)
  return r.body.jobs[0]
}

describe('the stage engine over the worker API', () => {
  it('runs a diamond: b and c after a, d after both, upstream outputs and context reach the next stage', async () => {
    const created = await p.call(p.keyA, 'POST', '/pipelines', { ...(diamond() as object), input: { n: 1 }, context: { customer: 'acme' } })
    expect(created.status).toBe(201)
    const id = created.body.pipelineId
    expect(created.body.stages.map((s: { name: string; status: string }) => [s.name, s.status])).toEqual([['a', 'Pending'], ['b', 'NotStarted'], ['c', 'NotStarted'], ['d', 'NotStarted']])
    const a = await pullOne(p.keyA, ['h.a'])
    expect(a).toMatchObject({ stageName: 'a', attempt: 1, input: { n: 1 }, context: { customer: 'acme' } })
    expect((await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: a.executionId, status: 'completed', output: { a: 1 }, context: { seenA: true } })).body).toEqual({ stageStatus: 'Completed' })
    const b = await pullOne(p.keyA, ['h.b', 'h.c'])
    const c = await pullOne(p.keyA, ['h.b', 'h.c'])
    expect([b.stageName, c.stageName].sort()).toEqual(['b', 'c'])
    expect(b.upstream).toEqual({ a: { output: { a: 1 } } })
    expect(b.context).toEqual({ customer: 'acme', seenA: true })
    const none = await p.call(p.keyA, 'POST', '/jobs/pull', { handlers: ['h.d'], max: 1, waitMs: 50 })
    expect(none.status).toBe(204)
    await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: b.executionId, status: 'completed', output: 'B' })
    await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: c.executionId, status: 'completed', output: 'C' })
    const d = await pullOne(p.keyA, ['h.d'])
    expect(d.upstream).toEqual({ b: { output: 'B' }, c: { output: 'C' } })
    await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: d.executionId, status: 'completed', logs: [{ level: 'info', message: 'done' }] })
    const got = await p.call(p.keyA, 'GET', `/pipelines/${id}`)
    expect(got.body.status).toBe('Completed')
    expect(got.body.stages.every((s: { status: string }) => s.status === 'Completed')).toBe(true)
    const logs = await p.call(p.keyA, 'GET', `/pipelines/${id}/logs`)
    expect(logs.body.logs.map((l: { message: string }) => l.message)).toEqual(['done'])
  })

  it('a parked pull answers the moment a job is ready', async () => {
    const pending = p.call(p.keyA, 'POST', '/jobs/pull', { handlers: ['park.x'], max: 1, waitMs: 20_000 })
    await new Promise((r) => setTimeout(r, 200))
    const t0 = Date.now()
    await p.call(p.keyA, 'POST', '/pipelines', { name: 'one', stages: [{ stageName: 's', stageHandlerName: 'park.x' }] })
    const r = await pending
    expect(r.status).toBe(200)
    expect(Date.now() - t0).toBeLessThan(10_000)
  })

  it('a stale execution id cannot ack or renew; a failed attempt is retried with a new one', async () => {
    await p.call(p.keyA, 'POST', '/pipelines', { name: 'retry', stages: [{ stageName: 's', stageHandlerName: 'r.s', options: { maxRetries: 1, retryInterval: 100, backoff: 'fixed' } }] })
    const j1 = await pullOne(p.keyA, ['r.s'])
    const f = await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: j1.executionId, status: 'failed', error: { message: 'flaky' } })
    expect(f.body).toEqual({ stageStatus: 'RetryScheduled' })
    const j2 = await pullOne(p.keyA, ['r.s'])
    expect(j2.attempt).toBe(2)
    expect(j2.executionId).not.toBe(j1.executionId)
    const stale = await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: j1.executionId, status: 'completed' })
    expect(stale.status).toBe(409)
    expect(stale.body.error.code).toBe('STALE_ATTEMPT')
    expect((await p.call(p.keyA, 'POST', '/jobs/lease/renew', { executionId: j1.executionId })).status).toBe(409)
    expect((await p.call(p.keyA, 'POST', '/jobs/lease/renew', { executionId: j2.executionId })).status).toBe(200)
    expect((await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: j2.executionId, status: 'failed', error: { message: 'again' } })).body).toEqual({ stageStatus: 'Failed' })
  })

  it('starts a template by name, idempotently', async () => {
    const body = { template: 'blueprint', input: { file: 'x.pdf' } }
    const one = await p.call(p.keyA, 'POST', '/pipelines', body, { 'idempotency-key': 'k1' })
    const two = await p.call(p.keyA, 'POST', '/pipelines', body, { 'idempotency-key': 'k1' })
    expect([one.status, two.status]).toEqual([201, 200])
    expect(two.body.pipelineId).toBe(one.body.pipelineId)
    const other = await p.call(p.keyA, 'POST', '/pipelines', { template: 'blueprint', input: { file: 'y.pdf' } }, { 'idempotency-key': 'k1' })
    expect(other.status).toBe(409)
  })

  it("application B's key cannot read, cancel, pull or ack application A's work", async () => {
    const created = await p.call(p.keyA, 'POST', '/pipelines', { name: 'mine', stages: [{ stageName: 's', stageHandlerName: 'iso.s' }] })
    const id = created.body.pipelineId
    expect((await p.call(p.keyB, 'GET', `/pipelines/${id}`)).status).toBe(404)
    expect((await p.call(p.keyB, 'POST', `/pipelines/${id}/cancel`)).status).toBe(404)
    expect((await p.call(p.keyB, 'POST', '/jobs/pull', { handlers: ['iso.s'], waitMs: 100 })).status).toBe(204)
    const job = await pullOne(p.keyA, ['iso.s'])
    expect((await p.call(p.keyB, 'POST', '/jobs/ack', { executionId: job.executionId, status: 'completed' })).status).toBe(404)
    expect((await p.call(p.keyB, 'POST', '/jobs/lease/renew', { executionId: job.executionId })).status).toBe(404)
    expect((await p.call(p.keyB, 'POST', '/logs', { executionId: job.executionId, entries: [{ level: 'info', message: 'x' }] })).status).toBe(404)
    expect((await p.call('nope', 'GET', `/pipelines/${id}`)).status).toBe(401)
    const boot = await p.call(p.keyA, 'POST', '/workers/bootstrap', { name: 'w', handlers: ['iso.s'], concurrency: 2 })
    expect(boot.status).toBe(201)
    expect(Object.keys(boot.body).sort()).toEqual(['heartbeatMs', 'leaseMs', 'maxWaitMs', 'sessionToken', 'workerId'])
    expect(JSON.stringify(boot.body)).not.toMatch(/amqp|rabbit|postgres|password/i)
  })

  it('cancel: the running attempt gets 409 JOB_CANCELLED', async () => {
    const created = await p.call(p.keyA, 'POST', '/pipelines', { name: 'c', stages: [{ stageName: 's', stageHandlerName: 'cx.s' }, { stageName: 't', stageHandlerName: 'cx.t' }] })
    const job = await pullOne(p.keyA, ['cx.s'])
    expect((await p.call(p.keyA, 'POST', `/pipelines/${created.body.pipelineId}/cancel`)).body).toEqual({ status: 'Cancelled' })
    const ack = await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: job.executionId, status: 'completed' })
    expect([ack.status, ack.body.error.code]).toEqual([409, 'JOB_CANCELLED'])
    const got = await p.call(p.keyA, 'GET', `/pipelines/${created.body.pipelineId}`)
    expect(got.body.stages.map((s: { status: string }) => s.status)).toEqual(['Cancelled', 'Cancelled'])
    expect((await p.call(p.keyA, 'POST', `/pipelines/${created.body.pipelineId}/cancel`)).status).toBe(409)
  })
})
