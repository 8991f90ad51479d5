// bench/flow: Flow append throughput on PostgreSQL beside pgbench on the same
// database in the same run, in alternating rounds:
//
// - 1 process, 16 loops: Flow.append from 16 concurrent loops of one
//   process. Appends issued in one tick share one INSERT statement (one
//   commit), so this measures Flow's client-side batching; the events per
//   commit it reached are counted from the rows (distinct inserting
//   transactions, xmin). Beside pgbench one-row INSERT commits from 16
//   clients, and beside pgbench INSERTs of that many rows per commit from 1
//   client (Flow keeps one statement in flight per flow and process).
// - 16 processes, each awaiting its own append: nothing can share a
//   statement, every append is its own commit. Beside pgbench one-row INSERT
//   commits from 16 clients: the like-for-like peer.
//
// Then append→subscriber latency, and the append rate while an SSE client of
// the flow lags (reads nothing) and what the serving process holds for it.
// Usage: node bench/run.mjs flow  (DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/postgres; BENCH_SECONDS, default 10; BENCH_ROUNDS, default 2).
import { execFileSync } from 'node:child_process'
import { fork } from 'node:child_process'
import { request } from 'node:http'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'
import { Database, Flow } from '@onepipe/sdk'
import { printTable } from '../lib/report.mjs'

const URL_ = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const CLIENTS = 16
const PACED_RATE = 1000
const tag = randomBytes(4).toString('hex')
const scratch = `bench_pgb_${tag}`
const schema = `bench_flow_${tag}`
const admin = postgres(URL_, { max: 1, onnotice: () => {} })

/**
 * pgbench for SECONDS with `clients` clients, each transaction one INSERT
 * statement of `rows` rows (autocommit: one commit per statement). Returns
 * commits/s (tps) and rows/s (rowsPerSec).
 */
function pgbench(clients, rows = 1) {
  const dir = mkdtempSync(join(tmpdir(), 'pgb-'))
  const script = join(dir, 'insert.sql')
  const values = Array.from({ length: rows }, () => `('{"n":1,"t":0}')`).join(', ')
  writeFileSync(script, `INSERT INTO ${scratch}.events (data) VALUES ${values};\n`)
  try {
    const out = execFileSync('pgbench', ['-n', '-c', String(clients), '-j', String(Math.min(2, clients)), '-T', String(SECONDS), '-f', script, URL_], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(out)
    if (!m) throw new Error(`cannot read pgbench output:\n${out}`)
    return { tps: Number(m[1]), rowsPerSec: Number(m[1]) * rows }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Events and commits of the flow's offsets (after, upto]: each append
 * statement is its own transaction, so the rows' distinct xmin count the
 * statements that carried them.
 */
async function batchStats(after, upto) {
  const [r] = await admin.unsafe(
    `SELECT coalesce(sum(c), 0)::int AS events, count(*)::int AS commits, coalesce(max(c), 0)::int AS largest
     FROM (SELECT count(*) AS c FROM "${schema}"._onepipe_flow_events
           WHERE flow_name = 'bench' AND offset_seq > $1 AND offset_seq <= $2 GROUP BY xmin::text) s`,
    [after, upto],
  )
  return { ...r, perCommit: r.commits === 0 ? 0 : r.events / r.commits }
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

function startAppenders(n) {
  const file = fileURLToPath(new URL('./appender.mjs', import.meta.url))
  const env = { ...process.env, DATABASE_URL: URL_, SCHEMA: schema, FLOW: 'bench' }
  return Promise.all(
    Array.from({ length: n }, () => {
      const child = fork(file, { env })
      return new Promise((resolve, reject) => {
        child.once('message', () => resolve(child))
        child.once('exit', (c) => reject(new Error(`appender exited ${c}`)))
      })
    }),
  )
}

/** Events/s of the separate appender processes together, each one append in flight, for `seconds`. */
async function appendFromProcesses(children, seconds) {
  const t0 = Date.now()
  const end = t0 + seconds * 1000
  const answers = await Promise.all(
    children.map(
      (c) =>
        new Promise((resolve) => {
          c.once('message', resolve)
          c.send({ cmd: 'run', end })
        }),
    ),
  )
  const appended = answers.reduce((a, r) => a + r.appended, 0)
  const last = Math.max(...answers.map((r) => r.finished))
  return { appended, rate: appended / ((last - t0) / 1000) }
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

const load = () => loadavg().map((x) => x.toFixed(2)).join(' ')
const loadBefore = load()
await admin.unsafe(`CREATE SCHEMA ${scratch}; CREATE TABLE ${scratch}.events (id bigserial PRIMARY KEY, data jsonb NOT NULL)`)
const db = Database.create('bench').postgres(URL_).schema(schema).pool({ max: CLIENTS }).build()
let sub
let appenders = []
try {
  await db.ready()
  const flow = Flow.create('bench').db(db).build()
  await flow.append({ n: 0, t: Date.now() }) // creates the counter row, warms the pool
  appenders = await startAppenders(CLIENTS)

  // 1. Alternating rounds, each: pgbench one-row INSERT commits (16 clients);
  //    Flow.append from 16 loops of this process, counting the events per
  //    commit it reached; pgbench INSERTs of that many rows per commit (1
  //    client); Flow.append from 16 processes, each awaiting its own append.
  const pgOne = []
  const ours = []
  const oursBatch = []
  const pgMulti = []
  const procs = []
  const procsBatch = []
  for (let r = 0; r < ROUNDS; r++) {
    pgOne.push(pgbench(CLIENTS).tps)
    let h = await flow.head()
    ours.push((await appendFor(flow, SECONDS)).rate)
    oursBatch.push(await batchStats(h, (h = await flow.head())))
    const batch = Math.max(1, Math.round(oursBatch[r].perCommit))
    pgMulti.push({ batch, ...pgbench(1, batch) })
    procs.push((await appendFromProcesses(appenders, SECONDS)).rate)
    procsBatch.push(await batchStats(h, await flow.head()))
  }
  const pgTps = mean(pgOne)
  const appendRate = mean(ours)
  const pgMultiRows = mean(pgMulti.map((x) => x.rowsPerSec))
  const procRate = mean(procs)
  const perCommit = (bs) => {
    const events = bs.reduce((a, b) => a + b.events, 0)
    const commits = bs.reduce((a, b) => a + b.commits, 0)
    return `${(events / commits).toFixed(2)} events/commit, largest ${Math.max(...bs.map((b) => b.largest))}`
  }
  await Promise.all(appenders.map((c) => new Promise((r) => (c.once('exit', r), c.send({ cmd: 'exit' })))))
  appenders = []

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

  const rounds = (xs) => xs.map((x) => x.toFixed(0)).join(', ')
  const one16 = `pgbench one-row INSERT commits, ${CLIENTS} clients (rounds ${rounds(pgOne)})`
  const rows = [
    {
      name: `1 process, ${CLIENTS} loops: appends of one tick share a statement (${perCommit(oursBatch)}; rounds ${rounds(ours)}) — beside ${one16}`,
      ours: appendRate,
      peer: pgTps,
      unit: 'rows/s',
    },
    {
      name: `the same 1-process Flow figure — beside pgbench INSERTs of ${[...new Set(pgMulti.map((x) => x.batch))].join(' / ')} rows per commit (its events/commit per round, rounded), 1 client (rounds ${rounds(pgMulti.map((x) => x.rowsPerSec))})`,
      ours: appendRate,
      peer: pgMultiRows,
      unit: 'rows/s',
    },
    {
      name: `${CLIENTS} processes, each awaiting its own append (${perCommit(procsBatch)}; rounds ${rounds(procs)}) — beside ${one16}`,
      ours: procRate,
      peer: pgTps,
      unit: 'rows/s',
    },
    { name: `1 process, ${CLIENTS} loops, with a subscriber in another process — beside pgbench one-row INSERT, ${CLIENTS} clients`, ours: loadedRun.rate, peer: pgTps, unit: 'rows/s' },
    { name: '  that subscriber received', ours: `${loaded.received} / ${appended} ${loaded.received === appended ? '(all)' : '(MISSING)'}` },
    { name: '  append→subscriber latency p50 / p99 under that load', ours: `${pct(loadedLat, 50)} / ${pct(loadedLat, 99)} ms` },
    { name: `Flow.append at a steady ${PACED_RATE}/s: subscriber received`, ours: `${steady.received} / ${paced} ${steady.received === paced ? '(all)' : '(MISSING)'}` },
    { name: '  append→subscriber latency p50 / p99', ours: `${pct(steadyLat, 50)} / ${pct(steadyLat, 99)} ms` },
    { name: `1 process, ${CLIENTS} loops, while an SSE client of the flow reads nothing — beside pgbench one-row INSERT, ${CLIENTS} clients`, ours: laggedRun.rate, peer: pgTps, unit: 'rows/s' },
    { name: `  the SSE server's heap + external growth meanwhile (${laggedRun.appended} events appended)`, ours: `${sseGrowthMb.toFixed(1)} MB` },
  ]
  const [version, fsync, syncCommit, walSync] = await Promise.all(['server_version', 'fsync', 'synchronous_commit', 'wal_sync_method'].map(async (k) => Object.values((await admin.unsafe(`SHOW ${k}`))[0])[0]))
  printTable(
    `bench/flow — PostgreSQL ${version}, ${ROUNDS}×${SECONDS}s rounds alternating, node ${process.version}, load average ${loadBefore} before / ${load()} after (shared machine: figures are noisy)`,
    'pgbench',
    rows,
  )
  console.log(
    `\nDurability: Flow and pgbench write to the same PostgreSQL (fsync=${fsync}, synchronous_commit=${syncCommit}, wal_sync_method=${walSync}): ` +
      'an append resolves and a pgbench transaction counts only after its commit is flushed to the WAL; a statement shared by many appends flushes once for all of them, ' +
      'as a multi-row pgbench INSERT does for its rows.',
  )
  console.log(
    `\nFlow.append / pgbench: 1 process (batched) ÷ one-row ${CLIENTS} clients = ${(appendRate / pgTps).toFixed(2)} (the target ≥ 0.50 was set on this row); ` +
      `1 process (batched) ÷ multi-row 1 client = ${(appendRate / pgMultiRows).toFixed(2)}; ${CLIENTS} processes ÷ one-row ${CLIENTS} clients = ${(procRate / pgTps).toFixed(2)}`,
  )
  await flow.close()
} finally {
  await Promise.all(appenders.map((c) => new Promise((r) => (c.once('exit', r), c.send({ cmd: 'exit' })))))
  if (sub && sub.exitCode === null) {
    sub.send({ cmd: 'exit' })
    await new Promise((r) => sub.once('exit', r))
  }
  await db.close()
  await admin.unsafe(`DROP SCHEMA IF EXISTS ${scratch} CASCADE; DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await admin.end()
}
