// bench/cron-channel: Channel calls over HTTP (autocannon, 50 connections)
// beside a bare Hono handler doing the same work (validate + one INSERT),
// with and without idempotency, lease mode and transactional, in one server
// process (plus the bare handler inside db.transaction(), for what one
// transaction costs by itself); then how fast concurrent duplicates of an
// idempotent call wake once the first finishes (lease mode: the NOTIFY path,
// the fallback re-check is every 2 s; transactional: the commit releases the
// row lock the other instance waits on); then cron fire
// lateness (actual − scheduled, database clock) of an every-second Cron
// beside croner's own in-process timer, over the same ticks.
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { Cron as Croner } from 'croner'
import { z } from 'zod'
import { Channel, Cron, Database } from '@onepipe/sdk'
import { printTable, startServer } from '../lib/report.mjs'

const DURATION = Number(process.env.BENCH_SECONDS ?? 5)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const TICKS = Number(process.env.BENCH_TICKS ?? 20)
const DUP_ROUNDS = Number(process.env.BENCH_DUP_ROUNDS ?? 10)
const DUPLICATES = 19
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const SCHEMA = `bench_cc_${randomUUID().slice(0, 8)}`

const body = () => JSON.stringify({ orderId: randomUUID(), amount: 42 })
const fixedBody = JSON.stringify({ orderId: 'the-same-order', amount: 42 })
const variants = [
  { name: 'bare Hono handler', path: '/bare/charge', body },
  { name: 'Channel, no idempotency', path: '/rpc/charge-plain', body },
  { name: 'Channel, idempotent (new key)', path: '/rpc/charge-idem', body },
  { name: 'Channel, idempotent (replayed key)', path: '/rpc/charge-idem', body: () => fixedBody },
  { name: 'Channel, transactional (new key)', path: '/rpc/charge-tx', body },
  { name: 'Channel, transactional (replayed key)', path: '/rpc/charge-tx', body: () => fixedBody },
  { name: 'bare Hono handler in db.transaction()', path: '/bare/charge-tx', body },
  { name: 'exactly-once by hand (postgres.js, new key)', path: '/hand/charge-once', body },
]

function load(port, v, duration) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `http://127.0.0.1:${port}${v.path}`,
        connections: CONNECTIONS,
        duration,
        pipelining: 1,
        requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, setupRequest: (req) => ({ ...req, body: v.body() }) }],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    )
  })
}

const admin = Database.create('admin').postgres(DATABASE_URL).schema(SCHEMA).pool({ max: 4 }).build()
await admin.ready()
const server = await startServer(fileURLToPath(new URL('./server.mjs', import.meta.url)), { DATABASE_URL, SCHEMA })
const http = {}
try {
  for (const v of variants) {
    const check = await load(server.port, v, 1)
    if (check.non2xx > 0 || check['2xx'] === 0) throw new Error(`${v.name}: ${check.non2xx} non-2xx responses`)
  }
  for (let i = 0; i < ROUNDS; i++) {
    for (const v of i % 2 === 0 ? variants : [...variants].reverse()) {
      const res = await load(server.port, v, DURATION)
      const acc = (http[v.name] ??= { rps: [], p50: [], p99: [] })
      acc.rps.push(res.requests.average)
      acc.p50.push(res.latency.p50)
      acc.p99.push(res.latency.p99)
    }
  }
} finally {
  await server.stop()
}

// Duplicate wake-up: the first call holds its key until a duplicate of the other
// instance waits on it; the figure is the time from its handler returning to the
// last duplicate getting the result.
const Charge = z.object({ orderId: z.string(), amount: z.number() })
const dupWake = { lease: [], transactional: [] }
const sleep = (ms) => new Promise((res) => setTimeout(res, ms))
for (const mode of ['lease', 'transactional']) {
  for (let r = 0; r < DUP_ROUNDS; r++) {
    const name = `dup-${mode}-${r}`
    let release
    const held = new Promise((res) => (release = res))
    let started = false
    let finishedAt = 0
    const make = (fn) => {
      const b = Channel.create(name).input(Charge).db(admin).idempotency((i) => i.orderId)
      return (mode === 'transactional' ? b.transactional() : b).handler(fn).build()
    }
    const owner = make(async () => {
      started = true
      await held
      finishedAt = performance.now()
      return { ok: true }
    })
    // A second object of the same channel stands in for another instance.
    const other = make(() => ({ ok: false }))
    const first = owner.call({ orderId: 'k', amount: 1 })
    while (!started) await sleep(5)
    const dups = Array.from({ length: DUPLICATES }, (_, i) => (i % 2 ? other : owner).call({ orderId: 'k', amount: 1 }).then(() => performance.now()))
    const waiting =
      mode === 'lease'
        ? async () => (await admin.query('SELECT waiters FROM _onepipe_channel_idempotency WHERE channel_name = $1 AND idempotency_key = $2', [name, 'k']))[0]?.waiters
        : async () => (await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name LIKE $1`, [`onepipe:admin@%:${process.pid}`]))[0].n > 0
    while (!(await waiting())) await sleep(5)
    // Let the other duplicates reach their wait too.
    await sleep(50)
    release()
    await first
    const ends = await Promise.all(dups)
    dupWake[mode].push(Math.max(...ends) - finishedAt)
    await owner.close()
    await other.close()
  }
}

// Cron lateness: OnePipe's scheduler (lease, fenced claim INSERT, database clock) and croner's bare timer tick together.
const onepipe = []
const bare = []
const job = Cron.create(`bench-${SCHEMA}`)
  .schedule('* * * * * *')
  .db(admin)
  .handler((ctx) => void onepipe.push(ctx.actualTime.getTime() - ctx.scheduledTime.getTime()))
  .build()
const peer = new Croner('* * * * * *', () => {
  const now = performance.timeOrigin + performance.now()
  bare.push(now - Math.floor(now / 1000) * 1000)
})
await job.start()
while (onepipe.length < TICKS || bare.length < TICKS) await new Promise((r) => setTimeout(r, 100))
peer.stop()
await job.stop()
await admin.execute(`DROP SCHEMA "${SCHEMA}" CASCADE`)
await admin.close()

const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length
const pct = (a, p) => {
  const s = [...a].sort((x, y) => x - y)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]
}
const base = http['bare Hono handler']
const rows = []
for (const v of variants.slice(1)) {
  const r = http[v.name]
  rows.push({ name: `${v.name}: calls/s`, ours: mean(r.rps), peer: mean(base.rps), unit: 'req/s' })
  rows.push({ name: `${v.name}: p50`, ours: mean(r.p50), peer: mean(base.p50), unit: 'ms', higherIsBetter: false })
  rows.push({ name: `${v.name}: p99`, ours: mean(r.p99), peer: mean(base.p99), unit: 'ms', higherIsBetter: false })
}
printTable(`bench/cron-channel — HTTP (autocannon, ${CONNECTIONS} connections, ${ROUNDS}×${DURATION}s per variant), work = validate + 1 INSERT, node ${process.version}`, 'bare Hono', rows)
// The transactional Channel beside the least an exactly-once call can send (server.mjs, /hand/charge-once).
const hand = http['exactly-once by hand (postgres.js, new key)']
const tx = http['Channel, transactional (new key)']
printTable(
  'transactional Channel (new key) beside exactly-once written by hand: lock + look-up with BEGIN, the INSERT, the marker with COMMIT',
  'by hand',
  [
    { name: 'calls/s', ours: mean(tx.rps), peer: mean(hand.rps), unit: 'req/s' },
    { name: 'p50', ours: mean(tx.p50), peer: mean(hand.p50), unit: 'ms', higherIsBetter: false },
    { name: 'p99', ours: mean(tx.p99), peer: mean(hand.p99), unit: 'ms', higherIsBetter: false },
  ],
)
for (const [mode, how] of [
  ['lease', "the waiters' own re-check is every 2000 ms"],
  ['transactional', 'waiting in memory, or on the row lock of the uncommitted claim'],
]) {
  const w = dupWake[mode]
  console.log(
    `\nidempotent duplicates, ${mode} (${DUPLICATES} waiting on 2 channel objects, ${DUP_ROUNDS} rounds): first call's handler returned → last duplicate answered, p50 ${pct(w, 50).toFixed(1)} ms, max ${Math.max(...w).toFixed(1)} ms (${how})`,
  )
}
printTable(
  `cron fire lateness over ${TICKS} every-second ticks (OnePipe: ctx.actualTime − scheduledTime on the database clock, after the lease check and claim INSERT; croner: callback time − the second)`,
  'croner timer',
  [
    { name: 'lateness p50', ours: pct(onepipe.slice(0, TICKS), 50), peer: pct(bare.slice(0, TICKS), 50), unit: 'ms', higherIsBetter: false },
    { name: 'lateness p99', ours: pct(onepipe.slice(0, TICKS), 99), peer: pct(bare.slice(0, TICKS), 99), unit: 'ms', higherIsBetter: false },
  ],
)
