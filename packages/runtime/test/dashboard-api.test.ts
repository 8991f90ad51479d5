import { Validator } from '@seriousme/openapi-schema-validator'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Auth, Channel, Cron, Flow, Pipeline, Projection, Signal, Workflow } from '@onepipe/sdk'
import { ControlPlane } from '@onepipe/pipelines'
import { serve, type App } from '@onepipe/runtime'
import { LiveQueue } from '../src/dashboard/live.js'
import { collectText, testDatabase, waitFor } from '@onepipe/testing'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies of the API, checked by the tests' expectations
type Json = any

let t: Awaited<ReturnType<typeof testDatabase>>
let app: App
let auth: Auth
let admin: string
let viewer: string
let appId: string
let flaky = true

// Built once the test's database exists: the flow lives in the test's own schema.
let events: ReturnType<typeof makeFlow>
const makeFlow = (db: Awaited<ReturnType<typeof testDatabase>>['db']) => Flow.create('dash-events').schema(z.object({ n: z.number() })).db(db).build()
const open = Signal.create('dash-open').schema(z.boolean()).default(true).build()
const quote = Channel.create('dash-quote')
  .input(z.object({ sku: z.string() }))
  .output(z.object({ cents: z.number() }))
  .idempotency((i) => i.sku)
  .handler(async () => ({ cents: 100 }))
  .build()
const flakyWf = Workflow.create('dash-flaky')
  .input(z.object({ customer: z.string() }))
  .define(async (ctx, input) => {
    const a = await ctx.step('first', async () => 1)
    const b = await ctx.step('second', async () => {
      if (flaky) throw new Error('the provider is down')
      return 2
    })
    return { customer: input.customer, sum: a + b }
  })
  .retry({ attempts: 1 })
  .build()
let ticks = 0
const job = Cron.create('dash-job').schedule('0 0 1 1 *').handler(() => ++ticks).build()
const bp = Pipeline.create('dash-bp').stage('a', { handler: 'dash.a' }).stage('b', { handler: 'dash.b' }).build()
// Port 0: test files run side by side.
const cp = ControlPlane.create().port(0).templates([bp]).build()

const call = async (path: string, token: string, init: RequestInit = {}) => {
  const res = await app.request(path, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) } })
  return { status: res.status, body: (res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text()) as Record<string, Json> }
}

beforeAll(async () => {
  t = await testDatabase()
  auth = Auth.create('main').secret('dashboard-api-test-secret-32-chars!!').db(t.db).build()
  events = makeFlow(t.db)
  const total = Projection.create('dash-total').from(events).initial({ sum: 0 }).reduce((s, e) => ({ sum: s.sum + e.n })).build()
  app = await serve({ db: t.db, auth, flows: [events], projections: [total], signals: [open], channels: [quote], workflows: [flakyWf], cron: [job], pipelines: [bp, cp], port: 0, hostname: '127.0.0.1', streams: false, handleSignals: false })
  await auth.users.create({ email: 'admin@dash.test', password: 'correct horse battery', roles: ['admin'] })
  await auth.users.create({ email: 'viewer@dash.test', password: 'correct horse battery', roles: ['viewer'] })
  admin = (await auth.login('admin@dash.test', 'correct horse battery')).accessToken
  viewer = (await auth.login('viewer@dash.test', 'correct horse battery')).accessToken
  appId = (await auth.applications.create({ name: 'dash' })).id
}, 60_000)
afterAll(async () => {
  await app?.shutdown('test')
  await t?.cleanup()
})

describe('the dashboard API', () => {
  it('the catalog names every primitive with its input schema; an anonymous caller gets 401', async () => {
    expect((await app.request('/__onepipe/catalog')).status).toBe(401)
    const { status, body } = await call('/__onepipe/catalog', viewer)
    expect(status).toBe(200)
    expect(body.flows).toEqual([{ name: 'dash-events' }])
    expect(body.projections).toEqual([{ name: 'dash-total', flow: 'dash-events', keyed: false }])
    expect(body.workflows[0].inputSchema.properties.customer).toEqual({ type: 'string' })
    expect(body.channels[0]).toMatchObject({ name: 'dash-quote', idempotent: true })
    expect(body.cron[0]).toMatchObject({ name: 'dash-job', schedule: '0 0 1 1 *' })
    expect(body.pipelines[0]).toEqual({ name: 'dash-bp', stages: [{ name: 'a', handler: 'dash.a', dependsOn: [] }, { name: 'b', handler: 'dash.b', dependsOn: ['a'] }] })
    expect(body.features).toEqual({ pipelines: true, auth: true })
    expect(body.user.email).toBe('viewer@dash.test')
  })

  it('/openapi.json describes the operators\' API, RPC with its schemas, and the workflow, flow and signal routes; it validates as OpenAPI 3.1', async () => {
    const doc = (await (await app.request('/openapi.json')).json()) as { paths: Record<string, Record<string, Json>> }
    for (const p of ['/__onepipe/pipelines', '/__onepipe/cron/dash-job/trigger', '/__onepipe/workflows/dash-flaky/start', '/__onepipe/flows/dash-events/stream', '/__onepipe/signals/dash-open', '/__onepipe/live', '/__onepipe/projections/dash-total/rebuild', '/__onepipe/channels/dash-quote/keys']) expect(doc.paths[p], p).toBeDefined()
    expect(doc.paths['/rpc/dash-quote']!.post.requestBody.content['application/json'].schema.properties.sku).toEqual({ type: 'string' })
    expect(doc.paths['/__onepipe/cron/dash-job/trigger']!.post['x-onepipe-role']).toBe('operator')
    const v = new Validator()
    const res = await v.validate(doc)
    expect(res.errors ?? []).toEqual([])
    expect(res.valid).toBe(true)
  })

  it('cron: list with next runs, pause and resume, trigger now (202) and its run in the history; a viewer may not trigger', async () => {
    const list = await call('/__onepipe/cron', viewer)
    expect(list.body.jobs[0]).toMatchObject({ name: 'dash-job', paused: false })
    expect(list.body.jobs[0].nextRuns).toHaveLength(5)
    expect((await call('/__onepipe/cron/dash-job/trigger', viewer, { method: 'POST' })).status).toBe(403)
    const paused = await call('/__onepipe/cron/dash-job/pause', admin, { method: 'POST' })
    expect(paused.body).toMatchObject({ name: 'dash-job', paused: true })
    // A paused job still runs when triggered by hand.
    const trig = await call('/__onepipe/cron/dash-job/trigger', admin, { method: 'POST' })
    expect(trig.status).toBe(202)
    await waitFor(async () => ((await call('/__onepipe/cron/dash-job/history', viewer)).body.executions as Json[]).some((e: Json): boolean => e.executionId === trig.body.executionId && e.status === 'completed'), { timeoutMs: 30_000, what: 'the triggered run in the history' })
    expect((await call('/__onepipe/cron/dash-job/resume', admin, { method: 'POST' })).body.paused).toBe(false)
    expect((await call('/__onepipe/cron/dash-job/history?limit=0', viewer)).status).toBe(400)
  })

  it('projections: lag behind the flow, state, rebuild; channels: calls and idempotency entries', async () => {
    await events.append({ n: 2 })
    await events.append({ n: 3 })
    await waitFor(async () => (await call('/__onepipe/projections', viewer)).body.projections[0].lag === 0 && (await call('/__onepipe/projections/dash-total/state', viewer)).body.state?.sum === 5, { timeoutMs: 30_000, what: 'the projection to catch up' })
    const list = await call('/__onepipe/projections', viewer)
    expect(list.body.projections[0]).toMatchObject({ name: 'dash-total', flow: 'dash-events', position: 2, head: 2, lag: 0 })
    expect((await call('/__onepipe/projections/dash-total/rebuild', viewer, { method: 'POST' })).status).toBe(403)
    expect((await call('/__onepipe/projections/dash-total/rebuild', admin, { method: 'POST' })).status).toBe(202)
    await waitFor(async () => (await call('/__onepipe/projections/dash-total/state', viewer)).body.state?.sum === 5, { timeoutMs: 30_000, what: 'the rebuilt state' })

    expect((await call('/rpc/dash-quote', admin, { method: 'POST', body: JSON.stringify({ sku: 'x1' }) })).status).toBe(200)
    const calls = await call('/__onepipe/channels/dash-quote/calls', viewer)
    expect(calls.body.calls[0]).toMatchObject({ idempotencyKey: 'x1', status: 'completed' })
    const keys = await call('/__onepipe/channels/dash-quote/keys', viewer)
    expect(keys.body.keys[0]).toMatchObject({ key: 'x1', status: 'completed' })
    expect(keys.body.keys[0].result).toBeUndefined()
  })

  it('workflows: runs filtered by a value inside their input; a failed run is retried from its last completed step', async () => {
    const started = await call('/__onepipe/workflows/dash-flaky/start', admin, { method: 'POST', body: JSON.stringify({ input: { customer: 'alice' } }) })
    expect(started.status).toBe(201)
    const bad = await call('/__onepipe/workflows/dash-flaky/start', admin, { method: 'POST', body: JSON.stringify({ input: { customer: 7 } }) })
    expect(bad.status).toBe(400)
    const id = started.body.workflowId as string
    await waitFor(async () => (await call(`/__onepipe/workflows/runs/${id}`, viewer)).body.run.status === 'failed', { timeoutMs: 30_000, what: 'the run to fail' })
    expect(((await call('/__onepipe/workflows/dash-flaky/runs?input=' + encodeURIComponent('{"customer":"alice"}'), viewer)).body.runs as Json[]).map((r: Json) => String(r.workflowId))).toEqual([id])
    expect((await call('/__onepipe/workflows/dash-flaky/runs?input=' + encodeURIComponent('{"customer":"bob"}'), viewer)).body.runs).toEqual([])
    expect((await call('/__onepipe/workflows/dash-flaky/runs?input=nope', viewer)).status).toBe(400)
    flaky = false
    expect((await call(`/__onepipe/workflows/runs/${id}/retry`, viewer, { method: 'POST' })).status).toBe(403)
    expect((await call(`/__onepipe/workflows/runs/${id}/retry`, admin, { method: 'POST' })).status).toBe(200)
    await waitFor(async () => (await call(`/__onepipe/workflows/runs/${id}`, viewer)).body.run.status === 'completed', { timeoutMs: 30_000, what: 'the retried run to complete' })
    const run = await call(`/__onepipe/workflows/runs/${id}`, viewer)
    expect(run.body.run.output).toEqual({ customer: 'alice', sum: 3 })
    expect(run.body.steps.find((s: Json) => s.stepId === 'first').attempts).toBe(1)
    const again = await call(`/__onepipe/workflows/runs/${id}/retry`, admin, { method: 'POST' })
    expect(again.status).toBe(409)
    expect(again.body.error.code).toBe('WORKFLOW_NOT_FAILED')
  })

  it('pipelines: keyset pages without gaps or repeats, filters by status, keyword and time, a template started from the API, bad queries are 400', async () => {
    const ids: string[] = []
    for (let i = 0; i < 7; i++) ids.push((await bp.run({ i }, { application: appId, keywords: [i % 2 === 0 ? 'Even' : 'odd'] })).pipelineId)
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const page: { body: Record<string, Json> } = await call(`/__onepipe/pipelines?limit=3${cursor ? `&cursor=${cursor}` : ''}`, viewer)
      seen.push(...(page.body.pipelines as Json[]).map((p: Json) => String(p.pipelineId)))
      cursor = page.body.nextCursor
    } while (cursor)
    expect(seen).toEqual([...ids].reverse())
    const even = await call('/__onepipe/pipelines?q=eV', viewer)
    expect(even.body.pipelines).toHaveLength(4)
    expect(even.body.pipelines[0].stageCounts).toEqual({ Pending: 1, NotStarted: 1 })
    expect((await call('/__onepipe/pipelines?q=dash-', viewer)).body.pipelines).toHaveLength(7)
    expect((await call('/__onepipe/pipelines?q=%25', viewer)).body.pipelines).toHaveLength(0)
    expect((await call(`/__onepipe/pipelines?from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, viewer)).body.pipelines).toHaveLength(0)
    expect((await call('/__onepipe/pipelines?status=Completed', viewer)).body.pipelines).toHaveLength(0)
    for (const q of ['status=Done', 'cursor=abc', 'limit=0', 'from=yesterday', 'from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z']) {
      const r = await call(`/__onepipe/pipelines?${q}`, viewer)
      expect(r.status, q).toBe(400)
      expect(r.body.error.code).toBe('VALIDATION_FAILED')
    }
    const tpl = await call('/__onepipe/pipelines/templates', viewer)
    expect(tpl.body.templates[0].name).toBe('dash-bp')
    expect((await call('/__onepipe/pipelines/templates/dash-bp/start', viewer, { method: 'POST', body: JSON.stringify({ appId }) })).status).toBe(403)
    const started = await call('/__onepipe/pipelines/templates/dash-bp/start', admin, { method: 'POST', body: JSON.stringify({ appId, input: { from: 'ui' } }) })
    expect(started.status).toBe(201)
    expect(started.body).toMatchObject({ name: 'dash-bp', template: 'dash-bp', input: { from: 'ui' }, status: 'Running' })
    expect((await call('/__onepipe/pipelines/templates/nope/start', admin, { method: 'POST', body: JSON.stringify({ appId }) })).status).toBe(404)
    expect((await call('/__onepipe/pipelines/templates/dash-bp/start', admin, { method: 'POST', body: JSON.stringify({ appId: 'a b' }) })).status).toBe(400)
    // The name of an application where its id belongs: a 404 that says it wants the id.
    const byName = await call('/__onepipe/pipelines/templates/dash-bp/start', admin, { method: 'POST', body: JSON.stringify({ appId: 'dash' }) })
    expect(byName.status).toBe(404)
    expect(byName.body.error.message).toContain('not its name')
    // Names of spaces only would list as nothing.
    const blank = await call('/__onepipe/auth/applications', admin, { method: 'POST', body: JSON.stringify({ name: '   ' }) })
    expect(blank.status).toBe(400)
    expect(blank.body.error.details.issues[0].message).toContain('more than spaces')
  })

  it('live: a pipeline change reaches an authenticated SSE client; anonymous clients get 401', async () => {
    expect((await fetch(`${app.url}/__onepipe/live`)).status).toBe(401)
    const res = await fetch(`${app.url}/__onepipe/live`, { headers: { authorization: `Bearer ${viewer}` } })
    expect(res.status).toBe(200)
    const live = collectText(res)
    // The control plane announces its subscriber in the database (publishing is off while nobody listens).
    await waitFor(async () => (await t.db.query('SELECT 1 FROM _onepipe_pipeline_listeners WHERE until > now()')).length > 0, { timeoutMs: 20_000, what: 'the listener lease' })
    const { pipelineId } = await bp.run({ live: true }, { application: appId })
    await waitFor(() => live.text().includes(pipelineId), { timeoutMs: 20_000, what: 'the new pipeline on the live stream' })
    expect(live.text()).toContain('event: pipeline')
    await live.stop()
  })

  it('live: a client that falls behind gets one resync instead of a silent gap', async () => {
    const q = new LiveQueue(3)
    for (let i = 0; i < 10; i++) q.push({ event: 'pipeline', data: String(i) })
    expect((await q.next()).event).toBe('resync')
    q.push({ event: 'pipeline', data: 'after' })
    expect(await q.next()).toEqual({ event: 'pipeline', data: 'after' })
  })

  it('the dashboard files: public, the page never cached with a same-origin CSP, deep links answered with the page, hashed assets immutable, a missing asset 404', async () => {
    const page = await app.request('/__onepipe/dashboard/')
    expect(page.status).toBe(200)
    expect(page.headers.get('cache-control')).toBe('no-cache')
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
    const html = await page.text()
    expect(html).toContain('<div id="root">')
    const deep = await app.request('/__onepipe/dashboard/pipelines/3f0c1b8e-0000-4000-8000-000000000000')
    expect(await deep.text()).toBe(html)
    const asset = /src="(\/__onepipe\/dashboard\/assets\/[^"]+\.js)"/.exec(html)?.[1]
    expect(asset).toBeDefined()
    const js = await app.request(asset!)
    expect(js.status).toBe(200)
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    expect(js.headers.get('content-type')).toMatch(/javascript/)
    const missing = await app.request('/__onepipe/dashboard/assets/index-nothere.js')
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as Json).error.requestId).toBeDefined()
    expect((await app.request('/__onepipe/dashboard')).status).toBe(301)
    // A file that is not in the build is a 404, not the page.
    expect((await app.request('/__onepipe/dashboard/favicon.ico')).status).toBe(404)
  })

  it('instances: this one, live', async () => {
    const { body } = await call('/__onepipe/instances', viewer)
    expect((body.instances as Json[]).map((i: Json) => String(i.id))).toContain(app.instanceId)
    expect(body.instances[0].live).toBe(true)
  })
})
