import { afterAll, beforeAll, expect, it } from 'vitest'
import { Auth } from '@onepipe/sdk'
import { spawnNode, testDatabase, type NodeProcess } from '@onepipe/testing'
import { fileURLToPath } from 'node:url'

const SECRET = 'parked-test-secret-of-at-least-32-chars!'
let t: Awaited<ReturnType<typeof testDatabase>>
let plane: NodeProcess
let url = ''
let key = ''

beforeAll(async () => {
  t = await testDatabase()
  const auth = Auth.create('pipelines-test').db(t.db).secret(SECRET).build()
  await auth.ready()
  const app = await auth.applications.create({ name: 'parked' })
  key = (await auth.apiKeys.create(app.id, { name: 'k' })).key
  await auth.close()
  plane = spawnNode(fileURLToPath(new URL('./fixtures/plane.mjs', import.meta.url)), [], { DATABASE_URL: t.url, SCHEMA: t.schema, AUTH_SECRET: SECRET, LOG_LEVEL: 'warn' })
  url = /URL=(\S+)/.exec(await plane.waitFor(/URL=\S+/, 60_000))![1]!
})
afterAll(async () => {
  plane.child.kill('SIGKILL')
  await plane.exited
  await t.cleanup()
})

const post = (path: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${url}${path}`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}) })

it('200 long-polls parked on one control plane hold at most 2 of its database connections, and a new job reaches one of them', async () => {
  const ac = new AbortController()
  const pulls = Array.from({ length: 200 }, () => post('/jobs/pull', { handlers: ['parked.h'], max: 1, waitMs: 20_000 }, ac.signal).catch(() => undefined))
  // Let every pull arrive, authenticate, claim once (nothing) and park. Connections opened before
  // (start-up, the first key lookup) idle out of the pool after 30 s; the ones the parked pulls hold
  // are the LISTEN connection and any that did work while they stayed parked (the watchdog runs too).
  await new Promise((r) => setTimeout(r, 1500))
  const [{ at } = { at: new Date() }] = await t.db.query<{ at: Date }>('SELECT now() AS at')
  await new Promise((r) => setTimeout(r, 2000))
  const [row] = await t.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE $1 AND (state_change >= $2 OR query ILIKE 'listen %')`,
    [`%:${plane.pid}`, at],
  )
  console.log(`parked: 200 pulls, ${row?.n} database connections of the control plane process`)
  expect(row?.n).toBeLessThanOrEqual(2)
  const created = await post('/pipelines', { name: 'p', stages: [{ stageName: 's', stageHandlerName: 'parked.h' }] })
  expect(created.status).toBe(201)
  const answered = await Promise.race(pulls.map(async (p) => (await p)?.status))
  expect(answered).toBe(200)
  ac.abort()
  await Promise.all(pulls)
})

it('a newly ready job reaches a parked worker quickly (measured, not asserted: see bench/pipelines)', async () => {
  const lat: number[] = []
  for (let i = 0; i < 30; i++) {
    const pull = post('/jobs/pull', { handlers: ['lat.h'], max: 1, waitMs: 10_000 })
    await new Promise((r) => setTimeout(r, 30))
    const t0 = performance.now()
    await post('/pipelines', { name: 'p', stages: [{ stageName: 's', stageHandlerName: 'lat.h' }] })
    const res = await pull
    const got = performance.now()
    expect(res.status).toBe(200)
    // From sending the create request to the parked pull's answer: an upper bound (it includes the create itself).
    lat.push(got - t0)
  }
  lat.sort((a, b) => a - b)
  console.log(`ready → parked worker: p50 ${lat[15]?.toFixed(1)} ms, p90 ${lat[27]?.toFixed(1)} ms`)
})
