// `$.on` and `$.every` with real processes on one PostgreSQL: 3 instances
// handle the Order.created events of 3,000 orders created through Things while one of them is SIGKILLed twice;
// every order's effect (a transactional `$.do` into a table without a unique
// constraint) is recorded exactly once and every event was handled. The
// every-second schedule runs exactly once per tick across the 3.
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Things, type Database } from '@onepipe/sdk'
import { spawnNode, testDatabase, uniqueName, waitFor, type NodeProcess } from '@onepipe/testing'

const fixture = fileURLToPath(new URL('./fixtures/handler.mjs', import.meta.url))
let db: Database
let schema: string
let url: string | undefined
let cleanup: () => Promise<void>
const procs: NodeProcess[] = []

beforeAll(async () => {
  ;({ db, schema, url, cleanup } = await testDatabase())
  await db.execute('CREATE TABLE order_effects (order_id text NOT NULL, pid int NOT NULL)')
  await db.execute('CREATE TABLE tick_effects (tick timestamptz NOT NULL, pid int NOT NULL)')
})
afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.exited))
  await cleanup()
})

const ORDERS = 3000
const count = async (sql: string) => Number((await db.query<{ n: string }>(sql))[0]!.n)

it('3 processes, one killed twice: every order handled, its effect recorded exactly once; one run per tick', async () => {
  const env = { DATABASE_URL: url!, SCHEMA: schema, APP: uniqueName('sem') }
  const start = () => {
    const p = spawnNode(fixture, [], env)
    procs.push(p)
    return p
  }
  const group = [start(), start(), start()]
  await Promise.all(group.map((p) => p.waitFor(/READY/, 60_000)))
  // Orders are created through a Things store of the same name: each create appends Order.created in its transaction.
  const orders = Things.create('shop').db(db).noun('Order').build().noun('Order')
  let victim = group[0]!
  for (let i = 0; i < ORDERS; i++) {
    await orders.create({ n: i }, { id: `o${i}` })
    if (i === 1000 || i === 2000) {
      // Kill whichever instance holds the handler's cursor now (the one doing the work), and start a fresh one.
      const [row] = await db.query<{ owner: string | null }>("SELECT owner FROM _onepipe_semantic_cursors WHERE handler = 'Order.created.0'")
      const pid = Number(row?.owner?.slice(1))
      victim = group.find((p) => p.pid === pid) ?? victim
      victim.kill('SIGKILL')
      await victim.exited
      group.splice(group.indexOf(victim), 1, start())
      await group.at(-1)!.waitFor(/READY/, 60_000)
    }
  }
  // Every effect recorded and every run ended (an effect is its run's step; the run completes just after).
  await waitFor(
    async () => (await count('SELECT count(DISTINCT order_id) AS n FROM order_effects')) === ORDERS && (await count("SELECT count(*) AS n FROM _onepipe_workflows WHERE workflow_name LIKE 'on.%' AND status <> 'completed'")) === 0,
    { timeoutMs: 600_000, intervalMs: 500, what: `all ${ORDERS} orders handled` },
  )
  expect(await count('SELECT count(*) AS n FROM order_effects')).toBe(ORDERS)
  expect(await count("SELECT count(*) AS n FROM _onepipe_workflows WHERE workflow_name LIKE 'on.%' AND status <> 'completed'")).toBe(0)
  // At least a few seconds of ticks went by: one effect per tick, never two.
  expect(await count('SELECT count(*) AS n FROM tick_effects')).toBeGreaterThan(3)
  expect(await db.query('SELECT tick, count(*) FROM tick_effects GROUP BY tick HAVING count(*) > 1')).toEqual([])
  for (const p of group) p.kill('SIGTERM')
  await Promise.all(group.map((p) => p.exited))
})
