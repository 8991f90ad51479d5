// bench/signal: contended Signal.update(n => n + 1) from 3 processes on one
// signal, on Redis and on PostgreSQL, beside the floor each store offers for
// a contended counter, in the same run: Redis INCR on one key from 3
// processes at the same concurrency, and pgbench `UPDATE t SET v = v + 1
// WHERE id = 1` on one row. Measures updates/s at 1, 10 and 1,000 in flight
// per process, and the time 3 × 1,000 concurrent updates take; checks that
// no update was lost. Usage: node bench/run.mjs signal
//   DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), REDIS_URL (redis://127.0.0.1:6379),
//   BENCH_SECONDS (5), INFLIGHT (1,10,1000), STORES (redis,postgres), PGBENCH_MAX_CLIENTS (16 per process),
//   ONEPIPE_SDK (the SDK the processes load, e.g. an older build's packages/sdk/dist/index.js for a before/after)
import { execFileSync, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'
import { Redis } from 'ioredis'
import { Database, RedisCache, Signal } from '@onepipe/sdk'
import { printTable } from '../lib/report.mjs'

const DB_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const INFLIGHT = (process.env.INFLIGHT ?? '1,10,1000').split(',').map(Number)
const STORES = (process.env.STORES ?? 'redis,postgres').split(',')
const PGBENCH_MAX = Number(process.env.PGBENCH_MAX_CLIENTS ?? 16)
const PROCS = 3
const BURST = 1000
const tag = randomBytes(4).toString('hex')
const schema = `bench_signal_${tag}`
const scratch = `bench_pgb_${tag}`
const prefix = `bench-signal-${tag}:`
const worker = fileURLToPath(new URL('./worker.mjs', import.meta.url))
const admin = postgres(DB_URL, { max: 1, onnotice: () => {} })
const redis = new Redis(REDIS_URL)

function ask(child, msg) {
  return new Promise((resolve, reject) => {
    const onExit = (c) => reject(new Error(`worker exited ${c}`))
    child.once('exit', onExit)
    child.once('message', (m) => {
      child.off('exit', onExit)
      resolve(m)
    })
    child.send(msg)
  })
}

async function startGroup(store) {
  const env = { ...process.env, STORE: store, DATABASE_URL: DB_URL, SCHEMA: schema, REDIS_URL, PREFIX: prefix, NAME: 'hits' }
  return Promise.all(
    Array.from({ length: PROCS }, () => {
      const child = fork(worker, { env })
      return new Promise((resolve, reject) => {
        child.once('message', () => resolve(child))
        child.once('exit', (c) => reject(new Error(`${store} worker exited ${c}`)))
      })
    }),
  )
}

const stopGroup = (group) => Promise.all(group.map((c) => new Promise((r) => (c.once('exit', r), c.send({ cmd: 'exit' })))))

/** Updates/s of the whole group: each process keeps `inflight` operations in flight for SECONDS. */
async function rate(group, inflight, seconds = SECONDS) {
  const rs = await Promise.all(group.map((c) => ask(c, { cmd: 'run', inflight, seconds })))
  return { count: rs.reduce((a, r) => a + r.count, 0), rate: rs.reduce((a, r) => a + r.count / (r.ms / 1000), 0) }
}

/** Wall time until every process has seen all of its BURST operations resolve, `inflight` at a time. */
async function burst(group, inflight) {
  const t0 = performance.now()
  await Promise.all(group.map((c) => ask(c, { cmd: 'burst', n: BURST, inflight })))
  return performance.now() - t0
}

async function measure(store, current) {
  const group = await startGroup(store)
  try {
    // Warm-up: connections, the signal's row, JIT.
    let done = (await rate(group, 1, 0.5)).count
    const rates = {}
    for (const n of INFLIGHT) {
      const r = await rate(group, n)
      rates[n] = r.rate
      done += r.count
      console.log(`${store.padEnd(8)} ${String(n).padStart(4)} in flight per process: ${Math.round(r.rate).toLocaleString('en-US')} updates/s`)
    }
    const burstMs = await burst(group, BURST)
    const seqMs = await burst(group, 1)
    done += 2 * PROCS * BURST
    console.log(`${store.padEnd(8)} ${PROCS} × ${BURST} concurrent: ${Math.round(burstMs)} ms; ${PROCS} × ${BURST} one after another: ${Math.round(seqMs)} ms`)
    const value = await current()
    if (value !== done) throw new Error(`${store}: ${done} updates resolved but the value is ${value}`)
    return { rates, burstMs, seqMs, done }
  } finally {
    await stopGroup(group)
  }
}

let pgbenchDone = 0
function pgbench(args) {
  const dir = mkdtempSync(join(tmpdir(), 'pgb-'))
  const script = join(dir, 'update.sql')
  writeFileSync(script, `UPDATE ${scratch}.t SET v = v + 1 WHERE id = 1;\n`)
  try {
    const out = execFileSync('pgbench', ['-n', '-f', script, ...args, DB_URL], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out)
    const processed = /number of transactions actually processed: (\d+)/.exec(out)
    if (!tps || !processed) throw new Error(`cannot read pgbench output:\n${out}`)
    pgbenchDone += Number(processed[1])
    return { tps: Number(tps[1]) }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

let db
let cache
try {
  await admin.unsafe(`CREATE SCHEMA ${scratch}; CREATE TABLE ${scratch}.t (id int PRIMARY KEY, v bigint NOT NULL); INSERT INTO ${scratch}.t VALUES (1, 0)`)
  db = Database.create('bench-signal').postgres(DB_URL).schema(schema).pool({ max: 2 }).build()
  await db.ready()
  cache = new RedisCache(REDIS_URL, prefix)
  const readers = {
    redis: Signal.create('hits').default(0).cache(cache).build(),
    postgres: Signal.create('hits').default(0).db(db).build(),
  }
  const [{ server_version: pgVersion }] = await admin`SHOW server_version`
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1]
  console.log(`bench/signal — ${PROCS} processes, ${SECONDS} s per figure, PostgreSQL ${pgVersion}, Redis ${redisVersion}, node ${process.version} (shared machine: figures are noisy)\n`)

  const ours = {}
  for (const store of STORES) ours[store] = await measure(store, () => readers[store].get())
  const incr = await measure('incr', async () => Number(await redis.get(`${prefix}incr:hits`)))

  const pgb = {}
  for (const n of INFLIGHT) {
    const perProcess = Math.min(n, PGBENCH_MAX)
    pgb[n] = { perProcess, ...pgbench(['-c', String(PROCS * perProcess), '-j', String(PROCS), '-T', String(SECONDS)]) }
    console.log(`pgbench  ${PROCS} × ${perProcess} clients: ${Math.round(pgb[n].tps).toLocaleString('en-US')} updates/s`)
  }
  // pgbench cannot keep 1,000 transactions in flight per client: its
  // figure for both 3 × 1,000 rows is 3 clients running 1,000 each.
  const t0 = performance.now()
  pgbench(['-c', String(PROCS), '-j', String(PROCS), '-t', String(BURST)])
  const pgbBurstMs = performance.now() - t0
  console.log(`pgbench  ${PROCS} clients × ${BURST} transactions: ${Math.round(pgbBurstMs)} ms`)
  const [{ v }] = await admin.unsafe(`SELECT v::float8 AS v FROM ${scratch}.t WHERE id = 1`)
  if (v !== pgbenchDone) throw new Error(`pgbench: ${pgbenchDone} transactions processed but the row holds ${v}`)

  const rows = (o, peer, peerBurst, peerSeq, peerLabel, burstLabel) => [
    ...INFLIGHT.map((n) => ({ name: `updates/s, ${PROCS} processes × ${n} in flight${peerLabel(n)}`, ours: o.rates[n], peer: peer(n), unit: '/s' })),
    { name: `${PROCS} × ${BURST.toLocaleString('en-US')} concurrent updates, wall time${burstLabel}`, ours: o.burstMs, peer: peerBurst, unit: 'ms', higherIsBetter: false },
    { name: `${PROCS} × ${BURST.toLocaleString('en-US')} updates one after another, wall time`, ours: o.seqMs, peer: peerSeq, unit: 'ms', higherIsBetter: false },
  ]
  if (ours.redis) printTable('Signal.update(n => n + 1) on Redis, beside Redis INCR on one key (same processes, same concurrency)', 'INCR', rows(ours.redis, (n) => incr.rates[n], incr.burstMs, incr.seqMs, () => '', ''))
  if (ours.postgres)
    printTable(
      'Signal.update(n => n + 1) on PostgreSQL, beside pgbench UPDATE t SET v = v + 1 WHERE id = 1 (one row)',
      'pgbench',
      rows(
        ours.postgres,
        (n) => pgb[n].tps,
        pgbBurstMs,
        pgbBurstMs,
        (n) => (pgb[n].perProcess === n ? '' : ` (pgbench: ${PROCS} × ${pgb[n].perProcess} clients)`),
        ` (pgbench: ${PROCS} clients × ${BURST.toLocaleString('en-US')})`,
      ),
    )
  console.log(`\nNo update lost: every figure above ended with the value equal to the number of updates that resolved (${Object.entries(ours).map(([s, o]) => `${s} ${o.done}`).join(', ')}; INCR ${incr.done}; pgbench ${v}).`)
  for (const [s, o] of Object.entries(ours)) console.log(`Target ${PROCS} × ${BURST.toLocaleString('en-US')} concurrent updates ≤ 3 s on ${s}: ${Math.round(o.burstMs)} ms — ${o.burstMs <= 3000 ? 'met' : 'NOT met'}`)
  for (const r of Object.values(readers)) await r.close()
} finally {
  await db?.close()
  await cache?.close()
  const keys = await redis.keys(`${prefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
  await admin.unsafe(`DROP SCHEMA IF EXISTS ${scratch} CASCADE; DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await admin.end()
}
