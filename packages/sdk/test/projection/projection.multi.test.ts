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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

it('projection processes killed with SIGKILL mid-stream and restarted end with the fold of the whole flow: no event applied twice or skipped', { timeout: 150_000 }, async () => {
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
  const producing = (async () => {
    while (appended < TOTAL) {
      const batch = Array.from({ length: 50 }, () => {
        const i = ++appended
        return flow.append({ i, k: `k${i % 7}`, v: (i * 3) % 11 })
      })
      await Promise.all(batch)
      await sleep(15)
    }
  })()

  await p1.waitFor(/APPLIED (1[5-9]\d\d|[2-9]\d\d\d)/, 60_000)
  p1.kill('SIGKILL')
  await p1.exited
  const p3 = await start()
  await p3.waitFor(/APPLIED ([3-9]\d\d\d)/, 60_000)
  p2.kill('SIGKILL')
  await p2.exited
  const killedAt = await totals.status()
  expect(killedAt.lastOffset).toBeLessThan(TOTAL) // the kills happened while the flow was still being folded
  await start()
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
