import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPlane, type Plane } from './helpers.js'

let p: Plane
beforeAll(async () => {
  p = await startPlane()
})
afterAll(async () => {
  await p.cleanup()
})

const count = async (): Promise<number[]> => {
  const [a] = await p.db.query<{ n: number }>('SELECT count(*)::int AS n FROM _onepipe_pipelines')
  const [b] = await p.db.query<{ n: number }>('SELECT count(*)::int AS n FROM _onepipe_pipeline_stages')
  return [a?.n ?? -1, b?.n ?? -1]
}
const stage = (name: string, handler = 'ok.h', options?: object) => ({ stageName: name, stageHandlerName: handler, ...(options ? { options } : {}) })

describe('bad input to POST /pipelines: a 4xx naming the field, nothing stored', () => {
  const cases: [string, unknown, number, string][] = [
    ['an invalid handler name', { name: 'x', stages: [stage('a', '9bad handler')] }, 400, 'stages.0.stageHandlerName'],
    ['cyclic dependsOn', { name: 'x', stages: [stage('a', 'ok.h', { dependsOn: ['b'] }), stage('b', 'ok.h', { dependsOn: ['a'] })] }, 400, 'stages.0.options.dependsOn.0'],
    ['an unknown dependsOn', { name: 'x', stages: [stage('a'), stage('b', 'ok.h', { dependsOn: ['zz'] })] }, 400, 'stages.1.options.dependsOn.0'],
    ['two stages with one name', { name: 'x', stages: [stage('a'), stage('a')] }, 400, 'stages.1.stageName'],
    ['10,000 stages', { name: 'x', stages: Array.from({ length: 10_000 }, (_, i) => stage(`s${i}`)) }, 400, 'stages'],
    ['a negative timeout', { name: 'x', stages: [stage('a', 'ok.h', { timeOut: -5 })] }, 400, 'stages.0.options.timeOut'],
    ['an unknown option', { name: 'x', stages: [stage('a', 'ok.h', { retries: 3 })] }, 400, 'stages.0.options'],
    ['no stages', { name: 'x', stages: [] }, 400, 'stages'],
    ['a NaN-like value that is not JSON', { name: 'x', input: { s: 'a\u0000b' }, stages: [stage('a')] }, 400, 'input.s'],
  ]
  for (const [what, body, status, path] of cases) {
    it(what, async () => {
      const before = await count()
      const r = await p.call(p.keyA, 'POST', '/pipelines', body)
      expect(r.status).toBe(status)
      expect(r.body.error.details.issues.map((i: { path: string }) => i.path)).toContain(path)
      expect(await count()).toEqual(before)
    })
  }

  it('a 10 MB input: 413, nothing stored', async () => {
    const before = await count()
    const r = await p.call(p.keyA, 'POST', '/pipelines', { name: 'x', input: 'x'.repeat(10 * 1024 * 1024), stages: [stage('a')] })
    expect(r.status).toBe(413)
    expect(r.body.error.code).toBe('PAYLOAD_TOO_LARGE')
    expect(await count()).toEqual(before)
  })

  it('malformed JSON: 400 INVALID_JSON', async () => {
    const r = await p.call(p.keyA, 'POST', '/pipelines', '{"name": "x", "stages": [')
    expect([r.status, r.body.error.code]).toEqual([400, 'INVALID_JSON'])
  })

  it('a pull with no handlers or a bad max: 400 with the field', async () => {
    const r = await p.call(p.keyA, 'POST', '/jobs/pull', { handlers: [], max: 0 })
    expect(r.status).toBe(400)
    expect(r.body.error.details.issues.map((i: { path: string }) => i.path).sort()).toEqual(['handlers', 'max'])
  })

  it('an ack naming no UUID: 400; an unknown attempt: 404', async () => {
    expect((await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: 'nope', status: 'completed' })).status).toBe(400)
    expect((await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: '00000000-0000-4000-8000-000000000000', status: 'completed' })).status).toBe(404)
  })

  it('an output that is not plain JSON is refused and the attempt stays current', async () => {
    await p.call(p.keyA, 'POST', '/pipelines', { name: 'v', stages: [stage('a', 'val.h')] })
    const job = (await p.call(p.keyA, 'POST', '/jobs/pull', { handlers: ['val.h'], waitMs: 5000 })).body.jobs[0]
    const bad = await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: job.executionId, status: 'completed', output: { s: 'x\u0000' } })
    expect(bad.status).toBe(400)
    expect((await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: job.executionId, status: 'completed', output: { s: 'x' } })).body).toEqual({ stageStatus: 'Completed' })
  })
})
