import { hostname } from 'node:os'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Database } from '@onepipe/sdk'
import { spawnNode, testDatabase, waitFor, type NodeProcess } from '@onepipe/testing'

// The transactional variant of channel.multi.test.ts: three processes share
// one PostgreSQL, and one of them is killed inside an open transaction.
const fixture = fileURLToPath(new URL('./fixtures/payments-tx.mjs', import.meta.url))
let db: Database
let schema: string
let url: string | undefined
let cleanup: () => Promise<void>
const procs: NodeProcess[] = []
let ports: number[] = []

beforeAll(async () => {
  ;({ db, schema, url, cleanup } = await testDatabase())
  // Deliberately no unique constraint: a second run for one key must be visible.
  await db.execute('CREATE TABLE channel_effects (order_id text NOT NULL, amount int NOT NULL, pid int NOT NULL)')
  const env = { DATABASE_URL: url ?? '', SCHEMA: schema }
  procs.push(...[0, 1, 2].map((i) => spawnNode(fixture, [], { ...env, HOLD: i === 0 ? '1' : '0' })))
  ports = (await Promise.all(procs.map((p) => p.waitFor(/PORT=\d+/)))).map((l) => Number(l.slice(5)))
})
afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.exited))
  await cleanup()
})

interface Call {
  orderId: string
  amount: number
  hold?: boolean
}
type Answer = { status: number; body: { result?: { chargeId: string; amount: number }; error?: { code: string } } }

const post = async (port: number, input: unknown): Promise<Answer> => {
  const r = await fetch(`http://127.0.0.1:${port}/rpc/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(input) })
  return { status: r.status, body: (await r.json()) as Answer['body'] }
}

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}

it('10,000 transactional calls from 50 concurrent clients over 3 processes, 20% duplicate keys: one side effect per distinct key, 409 for other input', { timeout: 120_000 }, async () => {
  const DISTINCT = 8000
  const calls: Call[] = Array.from({ length: DISTINCT }, (_, i) => ({ orderId: `o${i}`, amount: 100 + (i % 50) }))
  // 200 keys each get one call with different input: whichever of the pair commits first wins, the other is a 409.
  const conflicting = 200
  for (let i = 0; i < conflicting; i++) calls.push({ orderId: `o${i}`, amount: 1 + (i % 50) })
  // 1,800 exact duplicates spread over the keys without a conflicting call.
  for (let i = 0; i < 1800; i++) {
    const k = conflicting + (i % (DISTINCT - conflicting))
    calls.push({ orderId: `o${k}`, amount: 100 + (k % 50) })
  }
  shuffle(calls)
  expect(calls).toHaveLength(10_000)

  const answers: { call: Call; a: Answer }[] = []
  let next = 0
  const client = async (c: number) => {
    while (next < calls.length) {
      const call = calls[next++]!
      answers.push({ call, a: await post(ports[(c + next) % 3]!, call) })
    }
  }
  await Promise.all(Array.from({ length: 50 }, (_, c) => client(c)))
  expect(answers).toHaveLength(10_000)

  const byKey = new Map<string, { call: Call; a: Answer }[]>()
  for (const x of answers) byKey.set(x.call.orderId, [...(byKey.get(x.call.orderId) ?? []), x])
  const statuses = new Map<number, number>()
  for (const x of answers) statuses.set(x.a.status, (statuses.get(x.a.status) ?? 0) + 1)
  console.log(`transactional channel multi: ${answers.length} calls, ${byKey.size} distinct keys, statuses ${JSON.stringify(Object.fromEntries(statuses))}`)
  expect(Object.fromEntries(statuses)).toEqual({ 200: 10_000 - conflicting, 409: conflicting })
  for (const [, xs] of byKey) {
    const ok = xs.filter((x) => x.a.status === 200)
    // Every successful call of one key got the one stored result, for the one input that ran.
    expect(new Set(ok.map((x) => x.a.body.result!.chargeId)).size).toBe(1)
    expect(new Set(ok.map((x) => x.call.amount)).size).toBe(1)
    for (const x of xs.filter((y) => y.a.status === 409)) expect(x.a.body.error!.code).toBe('IDEMPOTENCY_CONFLICT')
  }
  const [effects] = await db.query<{ total: number; keys: number; pids: number }>('SELECT count(*)::int AS total, count(DISTINCT order_id)::int AS keys, count(DISTINCT pid)::int AS pids FROM channel_effects')
  expect(effects).toEqual({ total: DISTINCT, keys: DISTINCT, pids: 3 })
  // The side effect is the input of the call whose result is stored: they committed together.
  const mismatched = await db.query(
    `SELECT e.order_id FROM channel_effects e JOIN _onepipe_channel_idempotency i ON i.channel_name = 'pay' AND i.idempotency_key = e.order_id
     WHERE (i.result->>'amount')::int <> e.amount`,
  )
  expect(mismatched).toEqual([])
})

it('a process SIGKILLed inside its open transaction leaves nothing: duplicates blocked on the key on the other processes run it once, at once', { timeout: 60_000 }, async () => {
  const input = { orderId: 'crash-1', amount: 5, hold: true }
  const dead = post(ports[0]!, input).catch((e: unknown) => e)
  await procs[0]!.waitFor(/HOLDING crash-1/)
  // Written, but not committed: neither the side effect nor the key is there for anyone else.
  expect(await db.query(`SELECT 1 FROM channel_effects WHERE order_id = 'crash-1'`)).toEqual([])
  expect(await db.query(`SELECT 1 FROM _onepipe_channel_idempotency WHERE channel_name = 'pay' AND idempotency_key = 'crash-1'`)).toEqual([])
  const duplicates = Promise.all([post(ports[1]!, input), post(ports[2]!, input)])
  const names = [1, 2].map((i) => `onepipe:app@${hostname()}:${procs[i]!.pid}`)
  await waitFor(
    async () => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = ANY($1)`, [names]))[0]!.n === 2,
    { what: 'a duplicate on each other process to block on the uncommitted claim' },
  )
  procs[0]!.kill('SIGKILL')
  expect(await procs[0]!.exited).toBe('SIGKILL')
  expect(await dead).toBeInstanceOf(Error)
  // No lease to wait out: the rollback freed the key, and one of the blocked duplicates claimed it.
  const [a, b] = await duplicates
  expect(a.status).toBe(200)
  expect(b.body).toEqual(a.body)
  const rows = await db.query<{ pid: number }>(`SELECT pid FROM channel_effects WHERE order_id = 'crash-1'`)
  expect(rows).toHaveLength(1)
  expect([procs[1]!.pid, procs[2]!.pid]).toContain(rows[0]!.pid)
  expect(await db.query(`SELECT status FROM _onepipe_channel_idempotency WHERE channel_name = 'pay' AND idempotency_key = 'crash-1'`)).toEqual([{ status: 'completed' }])
})
