// Per-handler policies hold across replicas: 3 control-plane processes on
// one PostgreSQL, workers pulling from all of them at once.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Auth } from '@onepipe/sdk'
import { spawnNode, testDatabase, type NodeProcess } from '@onepipe/testing'
import { fileURLToPath } from 'node:url'

const SECRET = 'policies-test-secret-of-at-least-32-chars'
let t: Awaited<ReturnType<typeof testDatabase>>
const planes: NodeProcess[] = []
const urls: string[] = []
let key = ''

beforeAll(async () => {
  t = await testDatabase({ backend: 'real' })
  const auth = Auth.create('pipelines-test').db(t.db).secret(SECRET).build()
  await auth.ready()
  const app = await auth.applications.create({ name: 'policies' })
  key = (await auth.apiKeys.create(app.id, { name: 'k' })).key
  await auth.close()
  for (let i = 0; i < 3; i++) {
    const plane = spawnNode(fileURLToPath(new URL('./fixtures/plane.mjs', import.meta.url)), [], { DATABASE_URL: t.url, SCHEMA: t.schema, AUTH_SECRET: SECRET, LOG_LEVEL: 'warn', LEASE: '10s' })
    planes.push(plane)
    urls.push(/URL=(\S+)/.exec(await plane.waitFor(/URL=\S+/, 60_000))![1]!)
  }
}, 120_000)
afterAll(async () => {
  for (const plane of planes) plane.child.kill('SIGKILL')
  await Promise.all(planes.map((plane) => plane.exited))
  await t?.cleanup()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies of the API
async function call(i: number, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${urls[i % urls.length]}${path}`, { method, headers: { 'x-api-key': key, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : undefined }
}

async function create(handler: string, n: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const r = await call(i, 'POST', '/pipelines', { name: `p${i}`, stages: [{ stageName: 's', stageHandlerName: handler, options: { maxRetries: 0 } }] })
    expect(r.status).toBe(201)
    ids.push(r.body.pipelineId)
  }
  return ids
}

interface Job {
  executionId: string
  pipelineId: string
}

/** Pullers spread over the replicas until `done()`: each job goes to `work` (which acks it) as it arrives. */
async function workers(handler: string, n: number, done: () => boolean, work: (job: Job, plane: number) => Promise<void>, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs
  await Promise.all(
    Array.from({ length: n }, async (_, w) => {
      while (!done() && Date.now() < until) {
        const r = await call(w, 'POST', '/jobs/pull', { handlers: [handler], max: 2, waitMs: 1000 })
        expect([200, 204]).toContain(r.status)
        if (r.status === 200) await Promise.all((r.body.jobs as Job[]).map((j) => work(j, w + 1)))
      }
    }),
  )
}

const running = async (handler: string): Promise<number> =>
  Number((await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM _onepipe_pipeline_stages WHERE handler = $1 AND status = 'Running'`, [handler]))[0]?.n ?? 0)

it('concurrency 3 across 3 replicas: never more than 3 running at once, and every stage completes', async () => {
  expect((await call(0, 'PUT', '/handlers/multi.conc/policy', { concurrency: 3 })).status).toBe(200)
  // The other replicas learn of it within one watchdog pass.
  await sleep(1000)
  const ids = await create('multi.conc', 12)
  let completed = 0
  let most = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      most = Math.max(most, await running('multi.conc'))
      await sleep(10)
    }
  })()
  await workers('multi.conc', 12, () => completed >= 12, async (job, plane) => {
    await sleep(150)
    const r = await call(plane, 'POST', '/jobs/ack', { executionId: job.executionId, status: 'completed' })
    expect(r.status).toBe(200)
    completed++
  }, 60_000)
  sampling = false
  await sampler
  console.log(`concurrency 3: at most ${most} running at once over 3 replicas`)
  expect(completed).toBe(12)
  expect(most).toBeLessThanOrEqual(3)
  expect(most).toBeGreaterThan(0)
  for (const id of ids) expect((await call(0, 'GET', `/pipelines/${id}`)).body.status).toBe('Completed')
}, 90_000)

it('a rate of 5/s across 3 replicas: 20 jobs take at least ~3 s', async () => {
  expect((await call(1, 'PUT', '/handlers/multi.rate/policy', { rate: { perSecond: 5 } })).status).toBe(200)
  await sleep(1000)
  await create('multi.rate', 20)
  const t0 = Date.now()
  let completed = 0
  await workers('multi.rate', 9, () => completed >= 20, async (job, plane) => {
    await call(plane, 'POST', '/jobs/ack', { executionId: job.executionId, status: 'completed' })
    completed++
  }, 60_000)
  const took = Date.now() - t0
  console.log(`rate 5/s (burst 5): 20 jobs in ${took} ms over 3 replicas`)
  expect(completed).toBe(20)
  // A full bucket of 5 at once, then 15 at 5 per second.
  expect(took).toBeGreaterThanOrEqual(2700)
}, 90_000)

it('a breaker: after failures above the threshold nothing is handed out until the cooldown, then one probe, whose success closes it', async () => {
  expect((await call(2, 'PUT', '/handlers/multi.brk/policy', { breaker: { failureRate: 0.5, minCalls: 4, window: '1m', cooldown: '3s' } })).status).toBe(200)
  await sleep(1000)
  await create('multi.brk', 4)
  let failed = 0
  await workers('multi.brk', 3, () => failed >= 4, async (job, plane) => {
    await call(plane, 'POST', '/jobs/ack', { executionId: job.executionId, status: 'failed', error: { message: 'down', retryable: false } })
    failed++
  }, 30_000)
  const opened = (await call(0, 'GET', '/handlers/multi.brk/policy')).body.state
  expect(opened.breaker).toBe('open')
  const until = Date.parse(opened.breakerUntil)

  await create('multi.brk', 6)
  const got: { at: number; probe: boolean }[] = []
  let probeAckedAt = Infinity
  let completed = 0
  await workers('multi.brk', 9, () => completed >= 6, async (job, plane) => {
    const probe = got.length === 0
    got.push({ at: Date.now(), probe })
    if (probe) {
      // While the probe runs nothing else is handed out, on any replica.
      await sleep(1500)
      expect((await call(plane, 'GET', '/handlers/multi.brk/policy')).body.state.breaker).toBe('half_open')
      probeAckedAt = Date.now()
    }
    const r = await call(plane, 'POST', '/jobs/ack', { executionId: job.executionId, status: 'completed' })
    expect(r.status).toBe(200)
    completed++
  }, 60_000)
  console.log(`breaker: probe ${got[0]!.at - until} ms after the cooldown ended; the next job ${got[1]!.at - probeAckedAt} ms after the probe's success`)
  expect(completed).toBe(6)
  // The cooldown was read from the database's clock; this host's may differ by a little.
  expect(got[0]!.at).toBeGreaterThanOrEqual(until - 100)
  for (const g of got.slice(1)) expect(g.at).toBeGreaterThanOrEqual(probeAckedAt)
  expect((await call(1, 'GET', '/handlers/multi.brk/policy')).body.state.breaker).toBe('closed')
}, 120_000)
