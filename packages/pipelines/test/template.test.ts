// Templates in code get the same bounds as definitions posted over HTTP,
// and the worker API takes what the protocol allows (found by a newcomer's review).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, Pipeline, ValidationError } from '@onepipe/sdk'
import { startPlane, type Plane } from './helpers.js'

let p: Plane
beforeAll(async () => {
  p = await startPlane()
})
afterAll(async () => {
  await p.cleanup()
})

describe('templates in code', () => {
  it('a template without stages, or with more than 500, does not build', () => {
    expect(() => Pipeline.create('empty').build()).toThrow(ConfigError)
    let big = Pipeline.create('big')
    for (let i = 0; i < 501; i++) big = big.stage(`s${i}`, { handler: 'big.h' })
    expect(() => big.build()).toThrow(/at most 500 stages/)
  })

  it('an unknown stage option is refused at build time, naming it', () => {
    expect(() => Pipeline.create('typo').stage('a', { handler: 'x.a', retries: 3 } as never)).toThrow(/unknown option "retries"/)
  })

  it('run(): a context that is not an object, or an application that does not exist, is refused and nothing is stored', async () => {
    const t = Pipeline.create('ctx').stage('a', { handler: 'ctx.a' }).db(p.db).build()
    const before = await p.db.query<{ n: number }>('SELECT count(*)::int AS n FROM _onepipe_pipelines')
    await expect(t.run({}, { application: p.appA, context: 'str' as never })).rejects.toThrow(ValidationError)
    await expect(t.run({}, { application: p.appA, context: [1, 2] as never })).rejects.toThrow(ValidationError)
    await expect(t.run({}, { application: 'nope' })).rejects.toMatchObject({ code: 'APPLICATION_NOT_FOUND', status: 404 })
    await expect(t.run({}, { application: '00000000-0000-4000-8000-000000000000' })).rejects.toMatchObject({ code: 'APPLICATION_NOT_FOUND' })
    expect(await p.db.query<{ n: number }>('SELECT count(*)::int AS n FROM _onepipe_pipelines')).toEqual(before)
    const ok = await t.run({}, { application: p.appA, context: { k: 1 } })
    expect(ok.created).toBe(true)
  })
})

describe('the worker API', () => {
  it('a heartbeat with a fractional lagMs is taken', async () => {
    const boot = await p.call(p.keyA, 'POST', '/workers/bootstrap', { name: 'w', handlers: ['hb.h'], concurrency: 1 })
    const r = await p.call(boot.body.sessionToken, 'POST', '/workers/heartbeat', { inFlight: 0, lagMs: 26.89, cpu: 0.25 })
    expect([r.status, r.body]).toEqual([200, { drain: false }])
  })

  it('an ack with a wrong status names the field and the allowed values', async () => {
    const r = await p.call(p.keyA, 'POST', '/jobs/ack', { executionId: '00000000-0000-4000-8000-000000000000', status: 'complete' })
    expect(r.status).toBe(400)
    expect(r.body.error.details.issues).toEqual([{ path: 'status', message: 'must be "completed", "failed" or "released"' }])
  })

  it('GET /pipelines with a bad status or limit is a 400 naming it', async () => {
    const bad = await p.call(p.keyA, 'GET', '/pipelines?status=Bogus&limit=abc')
    expect(bad.status).toBe(400)
    expect(bad.body.error.details.issues.map((i: { path: string }) => i.path).sort()).toEqual(['limit', 'status'])
  })
})
