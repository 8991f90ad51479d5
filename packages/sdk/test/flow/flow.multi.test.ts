import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Flow, type Database } from '@onepipe/sdk'
import { spawnNode, testDatabase, type NodeProcess } from '@onepipe/testing'

const fixture = fileURLToPath(new URL('./fixtures/appender.mjs', import.meta.url))
let db: Database
let schema: string
let url: string | undefined
let cleanup: () => Promise<void>
const procs: NodeProcess[] = []

beforeAll(async () => {
  ;({ db, schema, url, cleanup } = await testDatabase())
})
afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.exited))
  await cleanup()
})

it('3 processes append 10,000 events each at once: 30,000 distinct, strictly increasing offsets, and every subscriber sees all of them in order with no gap', { timeout: 180_000 }, async () => {
  const env = { DATABASE_URL: url ?? '', SCHEMA: schema, FLOW: 'multi', COUNT: '10000', TOTAL: '30000' }
  for (const tag of ['a', 'b', 'c']) procs.push(spawnNode(fixture, [], { ...env, TAG: tag }))
  await Promise.all(procs.map((p) => p.waitFor(/READY/)))
  await db.notify('go', '')
  const appended = await Promise.all(procs.map((p) => p.waitFor(/APPENDED .*/, 150_000)))
  for (const line of appended) expect(JSON.parse(line.slice('APPENDED '.length))).toEqual({ n: 10_000, distinct: 10_000, appendOrder: true })
  const seen = await Promise.all(procs.map((p) => p.waitFor(/SEEN .*/, 150_000)))
  for (const line of seen) expect(JSON.parse(line.slice('SEEN '.length))).toEqual({ received: 30_000, last: 30_000, contiguous: true, perTagOrdered: true })
  await Promise.all(procs.map((p) => p.exited))

  const stats = await db.query<{ n: number; d: number; lo: number; hi: number; pairs: number }>(
    `SELECT count(*)::int8 AS n, count(DISTINCT offset_seq)::int8 AS d, min(offset_seq) AS lo, max(offset_seq) AS hi,
            count(DISTINCT (data->>'tag', data->>'i'))::int8 AS pairs
     FROM _onepipe_flow_events WHERE flow_name = 'multi'`,
  )
  expect(stats[0]).toEqual({ n: 30_000, d: 30_000, lo: 1, hi: 30_000, pairs: 30_000 })
  // A reader paging through the flow afterwards sees the same contiguous run.
  const flow = Flow.create('multi').db(db).build()
  let prev = 0
  for (;;) {
    const page = await flow.read({ offset: prev, limit: 5000 })
    if (page.length === 0) break
    for (const e of page) expect(e.offset).toBe(++prev)
  }
  expect(prev).toBe(30_000)
})

it('an appender killed with SIGKILL mid-append leaves no gap: offsets stay contiguous for every reader', { timeout: 120_000 }, async () => {
  const env = { DATABASE_URL: url ?? '', SCHEMA: schema, FLOW: 'crash', COUNT: '1000000', TOTAL: '1000000000' }
  const victim = spawnNode(fixture, [], { ...env, TAG: 'victim' })
  procs.push(victim)
  await victim.waitFor(/READY/)
  const flow = Flow.create('crash').db(db).build()
  const seen: number[] = []
  const stop = flow.subscribe((e) => void seen.push(e.offset), { offset: 0 })
  await stop.ready
  await db.notify('go', '')
  while ((await flow.head()) < 2000) await new Promise((r) => setTimeout(r, 20))
  victim.kill('SIGKILL')
  await victim.exited
  // Appends after the crash continue right after the last committed offset.
  const before = await flow.head()
  const after = await Promise.all(Array.from({ length: 50 }, (_, i) => flow.append({ tag: 'after', i })))
  expect(after.map((r) => r.offset).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => before + i + 1))
  const end = Date.now() + 30_000
  while (seen.length < before + 50 && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
  await stop()
  await flow.close()
  expect(seen).toEqual(Array.from({ length: before + 50 }, (_, i) => i + 1))
  const [stats] = await db.query<{ n: number; hi: number }>(`SELECT count(*)::int8 AS n, max(offset_seq) AS hi FROM _onepipe_flow_events WHERE flow_name = 'crash'`)
  expect(stats).toEqual({ n: before + 50, hi: before + 50 })
})
