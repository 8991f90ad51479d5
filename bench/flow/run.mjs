// bench/flow: Flow append throughput and append→subscriber latency on
// PostgreSQL, beside pgbench one-row INSERT commits/s on the same database in
// the same run; then the append rate while an SSE client of the flow lags
// (reads nothing) and what the serving process holds for it. Usage: node bench/flow/run.mjs  (DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/postgres; BENCH_SECONDS, default 10).
import { execFileSync } from 'node:child_process'
import { fork } from 'node:child_process'
import { request } from 'node:http'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'
import { Database, Flow } from '@onepipe/sdk'

const URL_ = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const CLIENTS = 16
const PACED_RATE = 1000
const tag = randomBytes(4).toString('hex')
const scratch = `bench_pgb_${tag}`
const schema = `bench_flow_${tag}`
const admin = postgres(URL_, { max: 1, onnotice: () => {} })

function pgbench() {
  const dir = mkdtempSync(join(tmpdir(), 'pgb-'))
  const script = join(dir, 'insert.sql')
  writeFileSync(script, `INSERT INTO ${scratch}.events (data) VALUES ('{"n":1,"t":0}');\n`)
  try {
    const out = execFileSync('pgbench', ['-n', '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS), '-f', script, URL_], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(out)
    if (!m) throw new Error(`cannot read pgbench output:\n${out}`)
    return Number(m[1])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function pct(sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

async function report(sub) {
  return new Promise((resolve) => {
    sub.once('message', resolve)
    sub.send({ cmd: 'report' })
  })
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function appendFor(flow, seconds) {
  let appended = 0
  const end = Date.now() + seconds * 1000
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (Date.now() < end) {
        await flow.append({ n: 1, t: Date.now() })
        appended++
      }
    }),
  )
  return { appended, rate: appended / ((performance.now() - t0) / 1000) }
}

function startSubscriber() {
  const sub = fork(fileURLToPath(new URL('./subscriber.mjs', import.meta.url)), { env: { ...process.env, DATABASE_URL: URL_, SCHEMA: schema, FLOW: 'bench' } })
  return new Promise((resolve, reject) => {
    sub.once('message', () => resolve(sub))
    sub.once('exit', (c) => reject(new Error(`subscriber exited ${c}`)))
  })
}

function startSseServer() {
  const child = fork(fileURLToPath(new URL('./sse-server.mjs', import.meta.url)), { env: { ...process.env, DATABASE_URL: URL_, SCHEMA: schema, FLOW: 'bench' } })
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve({ child, port: m.port }))
    child.once('exit', (c) => reject(new Error(`sse server exited ${c}`)))
  })
}

const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)

await admin.unsafe(`CREATE SCHEMA ${scratch}; CREATE TABLE ${scratch}.events (id bigserial PRIMARY KEY, data jsonb NOT NULL)`)
const db = Database.create('bench').postgres(URL_).schema(schema).pool({ max: CLIENTS }).build()
let sub
try {
  await db.ready()
  const flow = Flow.create('bench').db(db).build()
  await flow.append({ n: 0, t: Date.now() }) // creates the counter row, warms the pool

  // 1. Alternating rounds: pgbench (16 clients, one-row INSERT per
  //    transaction) and Flow.append from 16 concurrent appenders.
  const pg = []
  const ours = []
  for (let r = 0; r < ROUNDS; r++) {
    pg.push(pgbench())
    ours.push((await appendFor(flow, SECONDS)).rate)
  }
  const pgTps = mean(pg)
  const appendRate = mean(ours)

  // 2. The same load with a subscriber in another process receiving every event.
  sub = await startSubscriber()
  const loadedRun = await appendFor(flow, SECONDS)
  await sleep(1500)
  const loaded = await report(sub)
  const loadedLat = loaded.latencies.sort((a, b) => a - b)
  const appended = loadedRun.appended

  // 3. Latency at a steady 1,000 events/s (not saturated).
  const pacedEnd = Date.now() + Math.min(5, SECONDS) * 1000
  let paced = 0
  while (Date.now() < pacedEnd) {
    const tick = Date.now()
    await Promise.all(Array.from({ length: PACED_RATE / 100 }, () => flow.append({ n: 2, t: Date.now() })))
    paced += PACED_RATE / 100
    await sleep(Math.max(0, 10 - (Date.now() - tick)))
  }
  await sleep(1000)
  const steady = await report(sub)
  const steadyLat = steady.latencies.sort((a, b) => a - b)

  // 4. The same appenders while an SSE client of the flow reads nothing: the rate, and the
  //    serving process's heap + external growth after a full GC (it should hold about a page).
  const sse = await startSseServer()
  const memory = async () => {
    const m = await (await fetch(`http://127.0.0.1:${sse.port}/stats`)).json()
    return m.heapUsed + m.external
  }
  const memBefore = await memory()
  const head = await flow.head()
  const lagging = await new Promise((resolve, reject) => request(`http://127.0.0.1:${sse.port}/__onepipe/flows/bench/stream?offset=${head}`, resolve).on('error', reject).end())
  lagging.pause()
  const laggedRun = await appendFor(flow, SECONDS)
  const sseGrowthMb = ((await memory()) - memBefore) / 1048576
  lagging.destroy()
  sse.child.send({ cmd: 'exit' })
  await new Promise((r) => sse.child.once('exit', r))

  const rows = [
    [`pgbench one-row INSERT commits/s (16 clients, -j 2; rounds ${pg.map((x) => x.toFixed(0)).join(', ')})`, pgTps.toFixed(0), '1.00'],
    [`Flow.append events/s, 16 concurrent appenders (rounds ${ours.map((x) => x.toFixed(0)).join(', ')})`, appendRate.toFixed(0), (appendRate / pgTps).toFixed(2)],
    ['Flow.append events/s, same, with a subscriber in another process', loadedRun.rate.toFixed(0), (loadedRun.rate / pgTps).toFixed(2)],
    ['  that subscriber received', `${loaded.received} / ${appended}`, loaded.received === appended ? 'all' : 'MISSING'],
    ['  append→subscriber latency p50 / p99 under that load', `${pct(loadedLat, 50)} / ${pct(loadedLat, 99)} ms`, ''],
    [`Flow.append at a steady ${PACED_RATE}/s: subscriber received`, `${steady.received} / ${paced}`, steady.received === paced ? 'all' : 'MISSING'],
    ['  append→subscriber latency p50 / p99', `${pct(steadyLat, 50)} / ${pct(steadyLat, 99)} ms`, ''],
    ['Flow.append events/s, 16 appenders, while an SSE client of the flow reads nothing', laggedRun.rate.toFixed(0), (laggedRun.rate / pgTps).toFixed(2)],
    [`  the SSE server's heap + external growth meanwhile (${laggedRun.appended} events appended)`, `${sseGrowthMb.toFixed(1)} MB`, ''],
  ]
  console.log(`\nbench/flow — PostgreSQL ${(await admin`SHOW server_version`)[0].server_version}, ${ROUNDS}×${SECONDS}s rounds, node ${process.version} (shared machine: figures are noisy)`)
  console.log('| measure | value | ratio to pgbench |\n|---|---:|---:|')
  for (const r of rows) console.log(`| ${r.join(' | ')} |`)
  console.log(`\nFlow.append / pgbench INSERT at 16 concurrent = ${(appendRate / pgTps).toFixed(2)} (target ≥ 0.50)`)
  await flow.close()
} finally {
  if (sub && sub.exitCode === null) {
    sub.send({ cmd: 'exit' })
    await new Promise((r) => sub.once('exit', r))
  }
  await db.close()
  await admin.unsafe(`DROP SCHEMA IF EXISTS ${scratch} CASCADE; DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await admin.end()
}
