import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Database } from '@onepipe/sdk'
import { spawnNode, testDatabase, type NodeProcess } from '@onepipe/testing'
// @ts-expect-error -- a plain JS fixture shared with the projector processes
import { ledger } from './fixtures/ledger.mjs'

const fixture = fileURLToPath(new URL('./fixtures/projector.mjs', import.meta.url))
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

interface Ledger {
  flow: { append(e: unknown): Promise<unknown>; read(o: { offset: number; limit: number }): Promise<{ offset: number; data: { i: number; k: string; v: number } }[]> }
  totals: { get(): Promise<unknown>; status(): Promise<{ lastOffset: number; eventCount: number }> }
  byKey: { entries(): Promise<[string, unknown][]>; status(): Promise<{ lastOffset: number; eventCount: number }> }
}

const TOTAL = 6000

/** Waits until the process has reported a fold past `mark` (its subscription prints every commit). */
async function appliedAtLeast(p: NodeProcess, mark: number): Promise<void> {
  // Generous: a kill may take the lease holder, and on a loaded machine its successor's takeover
  // plus the fold up to the mark can take long.
  const end = Date.now() + 150_000
  for (;;) {
    const seen = [...p.output().matchAll(/APPLIED (\d+)/g)].map((m) => Number(m[1]))
    if (seen.some((n) => n >= mark)) return
    if (Date.now() > end) {
      const state = await db.query('SELECT * FROM _onepipe_projection_state')
      const flowRows = await db.query('SELECT count(*)::int AS n FROM _onepipe_flow_events')
      throw new Error(`no APPLIED >= ${mark} in:\n${p.output().slice(-1000)}\nstate: ${JSON.stringify(state)}\nflow events: ${JSON.stringify(flowRows)}`)
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

it('projection processes killed with SIGKILL mid-stream and restarted end with the fold of the whole flow: no event applied twice or skipped', { timeout: 600_000 }, async () => {
  const { flow, totals, byKey } = ledger(db) as Ledger
  const env = { DATABASE_URL: url ?? '', SCHEMA: schema }
  const start = async () => {
    const p = spawnNode(fixture, [], env)
    procs.push(p)
    await p.waitFor(/RUNNING/)
    return p
  }
  const p1 = await start()
  const p2 = await start()

  let appended = 0
  // The producer stays at most 1,000 events past the next kill's mark until that kill happened,
  // so every kill hits projections with part of the flow still to fold, however fast each side runs.
  const allowedAfterKill = [3500, 5000, TOTAL]
  let allowed = 2000
  const producing = (async () => {
    while (appended < TOTAL) {
      if (appended >= allowed) {
        await sleep(15)
        continue
      }
      const batch = Array.from({ length: 50 }, () => {
        const i = ++appended
        return flow.append({ i, k: `k${i % 7}`, v: (i * 3) % 11 })
      })
      await Promise.all(batch)
      await sleep(15)
    }
  })()

  // Three times: once the newest instance has seen the fold pass a mark, SIGKILL the oldest one and start another.
  const alive = [p1, p2]
  for (const mark of [1000, 2500, 4000]) {
    const newest = alive.at(-1) as NodeProcess
    await appliedAtLeast(newest, mark)
    const victim = alive.shift() as NodeProcess
    victim.kill('SIGKILL')
    await victim.exited
    expect((await totals.status()).lastOffset).toBeLessThan(TOTAL) // killed while the flow was still being folded
    allowed = allowedAfterKill.shift()!
    alive.push(await start())
  }
  await producing

  const deadline = Date.now() + 60_000
  while ((await totals.status()).lastOffset < TOTAL || (await byKey.status()).lastOffset < TOTAL) {
    if (Date.now() > deadline) throw new Error(`projections stuck at ${JSON.stringify(await totals.status())}`)
    await sleep(100)
  }

  // The expected fold, computed here from the whole flow.
  const expected = { count: 0, sum: 0, lastI: 0, ordered: true }
  const perKey = new Map<string, { count: number; sum: number }>()
  let after = 0
  for (;;) {
    const page = await flow.read({ offset: after, limit: 5000 })
    if (page.length === 0) break
    for (const e of page) {
      const d = e.data
      expected.ordered &&= d.i === expected.lastI + 1
      expected.count++
      expected.sum += d.v
      expected.lastI = d.i
      const k = perKey.get(d.k) ?? { count: 0, sum: 0 }
      perKey.set(d.k, { count: k.count + 1, sum: k.sum + d.v })
      after = e.offset
    }
  }
  expect(expected.count).toBe(TOTAL)
  expect(await totals.get()).toEqual(expected)
  expect((await totals.status()).eventCount).toBe(TOTAL)
  expect(new Map(await byKey.entries())).toEqual(perKey)
  expect((await byKey.status()).eventCount).toBe(TOTAL)
})
