import { afterAll, beforeAll, expect, it } from 'vitest'
import { startPlane, type Json, type Plane } from './helpers.js'

let p: Plane
beforeAll(async () => {
  p = await startPlane({ sweep: '100ms' })
})
afterAll(async () => {
  await p.cleanup()
})

it('a stage that hangs past its timeout is retried by its policy (delays within the jitter bounds); the late ack gets 409 and changes nothing', async () => {
  const created = await p.call(p.keyA, 'POST', '/pipelines', {
    name: 'hang',
    stages: [{ stageName: 's', stageHandlerName: 'hang.s', options: { timeOut: 300, maxRetries: 2, retryInterval: 400, backoff: 'fixed' } }],
  })
  const id = created.body.pipelineId as string
  const jobs: Json[] = []
  for (let i = 0; i < 3; i++) {
    const r = await p.call(p.keyA, 'POST', '/jobs/pull', { handlers: ['hang.s'], max: 1, waitMs: 10_000 })
    expect(r.status).toBe(200)
    const job = r.body.jobs[0]
    expect(job.attempt).toBe(i + 1)
    expect(job.deadlineInMs).toBeGreaterThan(0)
    expect(job.deadlineInMs).toBeLessThanOrEqual(300)
    jobs.push(job)
    // This worker hangs: no ack, no renewal.
  }
  const late = await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: jobs[0].executionId, status: 'completed', output: 'late' })
  expect([late.status, late.body.error.code]).toEqual([409, 'STALE_ATTEMPT'])
  expect((await p.call(p.keyA, 'POST', '/jobs/lease/renew', { executionId: jobs[1].executionId })).status).toBe(409)
  let view: Json
  for (;;) {
    view = (await p.call(p.keyA, 'GET', `/pipelines/${id}`)).body
    if (view.status !== 'Running') break
    await new Promise((r) => setTimeout(r, 50))
  }
  expect(view.status).toBe('Failed')
  const stage = view.stages[0]
  expect(stage.output).toBeNull()
  expect(stage.error.code).toBe('STAGE_TIMEOUT')
  const attempts = stage.attempts as { outcome: string; startedAt: string; endedAt: string }[]
  expect(attempts.map((a) => a.outcome)).toEqual(['timed_out', 'timed_out', 'timed_out'])
  // Each attempt ran at least its timeout; each retry waited between half and all of the 400 ms interval
  // (the jitter of core's retryDelay), plus at most the time to notice and hand it out on a busy machine.
  const delays: number[] = []
  for (let i = 0; i < 3; i++) {
    const a = attempts[i]!
    expect(Date.parse(a.endedAt) - Date.parse(a.startedAt)).toBeGreaterThanOrEqual(300)
    if (i > 0) delays.push(Date.parse(a.startedAt) - Date.parse(attempts[i - 1]!.endedAt))
  }
  for (const d of delays) {
    expect(d).toBeGreaterThanOrEqual(200)
    expect(d).toBeLessThan(400 + 5000)
  }
  console.log(`timeout retries: delays ${delays.join(', ')} ms (jitter bounds 200-400 ms)`)
})

it('a released job is ready again at once without spending a retry', async () => {
  await p.call(p.keyA, 'POST', '/pipelines', { name: 'rel', stages: [{ stageName: 's', stageHandlerName: 'rel.s' }] })
  const one = (await p.call(p.keyA, 'POST', '/jobs/pull', { handlers: ['rel.s'], waitMs: 5000 })).body.jobs[0]
  expect((await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: one.executionId, status: 'released' })).body).toEqual({ stageStatus: 'Pending' })
  const two = (await p.call(p.keyA, 'POST', '/jobs/pull', { handlers: ['rel.s'], waitMs: 5000 })).body.jobs[0]
  expect(two.attempt).toBe(1)
  expect(two.executionId).not.toBe(one.executionId)
  expect((await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: two.executionId, status: 'completed' })).body).toEqual({ stageStatus: 'Completed' })
})
