import { afterAll, beforeAll, expect, it } from 'vitest'
import { Auth, Pipeline } from '@onepipe/sdk'
import { ControlPlane, type PipelineChange } from '@onepipe/pipelines'
import { serve, type App } from '@onepipe/runtime'
import { collectText, testDatabase, waitFor } from '@onepipe/testing'

let t: Awaited<ReturnType<typeof testDatabase>>
let app: App
let other: ControlPlane
const auth = () => Auth.create('main').secret('pipelines-serve-test-secret-32-chars!!')
const bp = Pipeline.create('serve-bp').stage('one', { handler: 'sv.one' }).stage('two', { handler: 'sv.two' }).build()
const cp = ControlPlane.create().port(0).sweepEvery('100ms').templates([bp]).build()

beforeAll(async () => {
  t = await testDatabase()
  app = await serve({ db: t.db, auth: auth().db(t.db).build(), pipelines: [bp, cp], port: 0, hostname: '127.0.0.1', streams: false, handleSignals: false, public: ['GET /__onepipe/pipelines/*', 'GET /__onepipe/pipelines'] })
  // A second replica on the same database: changes it makes reach the first one's subscribers.
  other = ControlPlane.create().db(t.db).auth(auth().db(t.db).build()).port(0).sweepEvery('100ms').build()
  await other.start()
})
afterAll(async () => {
  await other.stop()
  await app.shutdown('test')
  await t.cleanup()
})

it('serve({ pipelines }) runs templates through a control plane with the app\'s Auth; a subscriber sees changes made on another replica, and its SSE stream ends at shutdown', async () => {
  const mainAuth = auth().db(t.db).build()
  await mainAuth.ready()
  const application = await mainAuth.applications.create({ name: 'sv' })
  const { key } = await mainAuth.apiKeys.create(application.id, { name: 'w' })
  await mainAuth.close()

  const seen: PipelineChange[] = []
  const stop = cp.onChange((c) => seen.push(c))
  // The other replica learns of the subscriber at its next watchdog pass.
  await new Promise((r) => setTimeout(r, 500))
  const sse = await fetch(`${app.url}/__onepipe/pipelines/events`)
  expect(sse.status).toBe(200)
  const live = collectText(sse)

  const { pipelineId } = await bp.run({ n: 1 }, { application: application.id })
  // Work it through the other replica's worker API only.
  for (const handler of ['sv.one', 'sv.two']) {
    const pulled = await fetch(`${other.url}/jobs/pull`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ handlers: [handler], waitMs: 10_000 }) })
    expect(pulled.status).toBe(200)
    const job = ((await pulled.json()) as { jobs: { executionId: string }[] }).jobs[0]!
    const acked = await fetch(`${other.url}/jobs/ack`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ executionId: job.executionId, status: 'completed', output: handler }) })
    expect(acked.status).toBe(200)
  }
  await waitFor(() => seen.some((c) => c.pipelineId === pipelineId && c.pipelineStatus === 'Completed'), { timeoutMs: 20_000, what: 'the completion to reach the subscriber on the first replica' })
  // Its creation, then each stage's completion.
  expect(seen.filter((c) => c.pipelineId === pipelineId).map((c) => c.stage ?? c.pipelineStatus)).toEqual(['Running', 'one', 'two'])
  await waitFor(() => live.text().includes('"pipelineStatus":"Completed"'), { timeoutMs: 20_000, what: 'the completion on the SSE stream' })
  const view = (await (await fetch(`${app.url}/__onepipe/pipelines/${pipelineId}`)).json()) as { status: string }
  expect(view.status).toBe('Completed')
  stop()
  // Shutdown ends the live stream promptly (its client reconnects elsewhere), and the hooks run.
  const t0 = Date.now()
  const report = await app.shutdown('test')
  await live.ended
  expect(Date.now() - t0).toBeLessThan(15_000)
  expect(report.cut).toEqual([])
})
