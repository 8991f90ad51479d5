// bench/pipelines: jobs end to end (create → pull → ack) on OnePipe's
// pipelines beside pg-boss 10, graphile-worker 0.17 (both on the same
// PostgreSQL) and BullMQ 6 (Redis), in one run. Every system gets 4 worker
// processes × concurrency 8 and a producer process of its own creating the
// same number of no-op jobs, 32 at a time, while the workers run.
//   OnePipe: single-stage pipelines created with POST /pipelines against one
//   control-plane process (and against 3), and 4-stage diamonds (a; b, c in
//   parallel; d after both). Workers speak the HTTP protocol
//   (docs/protocol/workers.md): a pull asks for as many jobs as free slots,
//   acks go in batches.
//   pg-boss: send / fetch (one job) / complete, 8 loops per worker process.
//   graphile-worker: addJob / run({ concurrency: 8 }) with one task.
//   BullMQ: queue.add / Worker({ concurrency: 8 }).
// Figures: jobs/s end to end (first create → last completion), creates/s of
// the producer, p50/p99 of create → completion (a timestamp in the payload),
// and commits per job (per stage for OnePipe) from pg_stat_database.xact_commit
// of a database made for the run (the window: workers parked → every process
// of the scenario exited; idle polling inside it counts).
// Then a latency scenario (workers parked, one job created every 20 ms:
// create → job received by a worker), and 200 parked long-polls against one
// control-plane process with its PostgreSQL connections counted.
//
// Usage: node bench/run.mjs pipelines [--jobs N] [--quick] [--no-multi] [--only onepipe,pgboss,graphile,bullmq]
//   ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres), REDIS_URL (redis://127.0.0.1:6379)
import { fork, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'
import { printTable } from '../lib/report.mjs'

const args = process.argv.slice(2)
const flag = (f) => args.includes(f)
const opt = (f, d) => (args.includes(f) ? args[args.indexOf(f) + 1] : d)
const QUICK = flag('--quick')
const JOBS = Number(opt('--jobs', QUICK ? 2000 : 20000))
const LAT_JOBS = Number(opt('--latency-jobs', QUICK ? 50 : 250))
const PARKED = Number(opt('--parked', 200))
const MULTI = !flag('--no-multi')
const ONLY = opt('--only', 'onepipe,pgboss,graphile,bullmq').split(',')
const WORKERS = 4
const CONCURRENCY = 8
const CREATE_CONCURRENCY = 32
const SPACING_MS = 20
const ADMIN_URL = process.env.ADMIN_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const AUTH_SECRET = randomBytes(24).toString('hex')
const tag = randomBytes(4).toString('hex')
const dbName = `onepipe_bench_pl_${tag}`
const u = new URL(ADMIN_URL)
u.pathname = `/${dbName}`
const DATABASE_URL = u.toString()
const here = (f) => fileURLToPath(new URL(f, import.meta.url))
const clock = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} })
const log = (s) => process.stdout.write(`${s}\n`)

// ─── Child processes: every one is tracked and killed on the way out ─────────
const children = new Set()
function track(child) {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}
function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL')
    } catch {}
  }
}
process.on('exit', killAll)
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130))

const baseEnv = { ...process.env, DATABASE_URL, REDIS_URL, AUTH_SECRET, NO_LOG_SUCCESS: '1' }

/** Runs a script to its end; resolves with the JSON of its last line. */
function runToEnd(file, argv, env) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(process.execPath, [file, ...argv.map(String)], { env: { ...baseEnv, ...env }, stdio: ['ignore', 'pipe', 'inherit'] }))
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.once('exit', (code) => {
      const line = out.trim().split('\n').at(-1)
      if (code !== 0 || !line) reject(new Error(`${file} ${argv.join(' ')} exited ${code}: ${out.slice(-500)}`))
      else resolve(JSON.parse(line))
    })
  })
}

/** Starts a control-plane process; resolves once it prints its port. */
function startControlPlane(schema) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(process.execPath, [...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.BENCH_PROF] : []), here('./control-plane.mjs')], { env: { ...baseEnv, SCHEMA: schema }, stdio: ['ignore', 'pipe', 'inherit'] }))
    let out = ''
    const onExit = (code) => reject(new Error(`control plane exited ${code}: ${out}`))
    child.stdout.on('data', (d) => {
      out += d
      const m = /PORT=(\d+)/.exec(out)
      if (m) {
        child.off('exit', onExit)
        resolve({
          pid: child.pid,
          url: `http://127.0.0.1:${m[1]}`,
          stop: () =>
            new Promise((r) => {
              if (child.exitCode !== null) return r()
              child.once('exit', r)
              child.kill('SIGTERM')
            }),
        })
      }
    })
    child.once('exit', onExit)
  })
}

/** Forks the worker processes; resolves when all are ready. `onDone(n)` hears completions. */
async function startWorkers(system, env, onDone) {
  const ws = []
  for (let i = 0; i < WORKERS; i++) {
    const child = track(fork(here('./worker.mjs'), [system], { env: { ...baseEnv, CONCURRENCY: String(CONCURRENCY), ...(typeof env === 'function' ? env(i) : env) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
    const w = { child, stats: undefined }
    w.ready = new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`worker ${system} exited ${code} before it was ready`)))
      child.on('message', (m) => {
        if (m.ready) resolve()
        if (m.done) onDone(m.done)
        if (m.stats) w.stats = m.stats
      })
    })
    ws.push(w)
  }
  await Promise.all(ws.map((w) => w.ready))
  return {
    stop: async () => {
      await Promise.all(
        ws.map(
          (w) =>
            new Promise((resolve) => {
              if (w.child.exitCode !== null) return resolve()
              w.child.once('exit', resolve)
              w.child.send('stop')
            }),
        ),
      )
      return ws.map((w) => w.stats).filter(Boolean)
    },
  }
}

async function commitsNow() {
  const [r] = await admin`SELECT xact_commit::float8 AS c FROM pg_stat_database WHERE datname = ${dbName}`
  return r.c
}
/** After every process of a scenario exited: waits until their flushed counters settle. */
async function commitsSettled() {
  let last = -1
  for (let i = 0; i < 40; i++) {
    const c = await commitsNow()
    if (c === last) return c
    last = c
    await sleep(300)
  }
  return last
}

const pct = (a, p) => {
  if (a.length === 0) return NaN
  const s = Float64Array.from(a).sort()
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
}

const setups = new Map()
const bullQueues = []
async function setup(system, schema, queue) {
  const key = `${system}:${schema ?? ''}:${queue ?? ''}`
  if (!setups.has(key)) setups.set(key, await runToEnd(here('./setup.mjs'), [system], { SCHEMA: schema ?? '', QUEUE: queue ?? '' }))
  return setups.get(key)
}

/**
 * One scenario: workers parked, the producer creates `count` jobs, the run
 * ends when the workers completed them all.
 * mode 'throughput' (CREATE_CONCURRENCY at a time) or 'latency' (one every SPACING_MS).
 */
async function scenario({ system, label, shape = 'single', cps = 1, count, mode = 'throughput', producer = system, countCommits = true }) {
  const schema = `op_${label.replace(/[^a-z0-9]+/gi, '_').toLowerCase()}`
  const queue = `bench_${label.replace(/[^a-z0-9]+/gi, '_').toLowerCase()}_${tag}`
  let s = {}
  if (system === 'bullmq') bullQueues.push(queue)
  if (system !== 'bullmq') s = await setup(system, system === 'onepipe' ? schema : undefined, queue)
  const planes = []
  for (let i = 0; i < (system === 'onepipe' ? cps : 0); i++) planes.push(await startControlPlane(schema))
  const stagesPer = shape === 'diamond' ? 4 : 1
  const expected = count * stagesPer
  let done = 0
  let finish
  const finished = new Promise((r) => (finish = r))
  const handlers = shape === 'diamond' ? ['bench.a', 'bench.b', 'bench.c', 'bench.d'] : ['bench.noop']
  const workers = await startWorkers(
    system,
    (i) => ({ MODE: mode, QUEUE: queue, CP_URL: planes[i % Math.max(1, planes.length)]?.url ?? '', API_KEY: s.key ?? '', HANDLERS: JSON.stringify(handlers) }),
    (n) => {
      done += n
      if (done >= expected) finish()
    },
  )
  await sleep(1000)
  const before = countCommits && system !== 'bullmq' ? await commitsNow() : undefined
  const t0 = clock()
  const prod = await runToEnd(here('./producer.mjs'), [producer, shape, count, mode === 'latency' ? 1 : CREATE_CONCURRENCY, mode === 'latency' ? SPACING_MS : 0], {
    SCHEMA: schema,
    QUEUE: queue,
    CP_URLS: JSON.stringify(planes.map((p) => p.url)),
    API_KEY: s.key ?? '',
    APP_ID: s.appId ?? '',
  })
  const limit = Math.max(60_000, count * 20)
  const timedOut = await Promise.race([finished.then(() => false), sleep(limit).then(() => true)])
  if (timedOut) log(`  ! ${label}: only ${done} of ${expected} stages completed within ${limit / 1000} s`)
  const stats = await workers.stop()
  for (const p of planes) await p.stop()
  const after = before === undefined ? undefined : await commitsSettled()
  const lat = stats.flatMap((x) => x.lat)
  const last = Math.max(...stats.map((x) => x.last))
  const errors = stats.reduce((a, x) => a + x.errors, 0)
  const completedStages = stats.reduce((a, x) => a + x.done, 0)
  const secs = (last - prod.start) / 1000
  const r = {
    label,
    system,
    count,
    stagesPer,
    completedStages,
    errors,
    jobsPerSec: count / secs,
    stagesPerSec: completedStages / secs,
    createsPerSec: prod.n / ((prod.end - prod.start) / 1000),
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    max: lat.length ? Math.max(...lat) : NaN,
    commits: after === undefined ? undefined : after - before,
    wallSecs: (clock() - t0) / 1000,
    createP50: prod.createP50,
  }
  if (r.commits !== undefined) {
    r.commitsPerJob = r.commits / count
    r.commitsPerStage = r.commits / Math.max(1, completedStages)
  }
  return r
}

// ─── Connections of one control-plane process with PARKED long-polls ─────────
/** TCP connections of `pid` to PostgreSQL's port, from /proc (independent of application_name). */
function pgSocketsOf(pid, port) {
  const inodes = new Set()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) inodes.add(m[1])
    } catch {}
  }
  let n = 0
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try {
      text = readFileSync(f, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/)
      if (c.length < 10) continue
      const remPort = parseInt(c[2].split(':')[1], 16)
      if (remPort === port && c[3] === '01' && inodes.has(c[9])) n++ // 01: ESTABLISHED
    }
  }
  return n
}

async function connections() {
  const schema = 'op_connections'
  const s = await setup('onepipe', schema)
  const pgPort = Number(new URL(ADMIN_URL).port || 5432)
  const out = {}
  // cold: the 200 pulls are the first requests of a fresh process; warm: one request first (the key is known to it).
  for (const kind of ['cold', 'warm']) {
    const cp = await startControlPlane(schema)
    const count = async () => {
      const rows = await admin`SELECT left(regexp_replace(query, '[[:space:]]+', ' ', 'g'), 70) AS q FROM pg_stat_activity WHERE datname = ${dbName} AND application_name LIKE ${`onepipe:%:${cp.pid}`}`
      return { byName: rows.length, bySocket: pgSocketsOf(cp.pid, pgPort), queries: rows.map((r) => r.q) }
    }
    try {
      await sleep(1500)
      if (kind === 'warm') await fetch(`${cp.url}/pipelines?limit=1`, { headers: { 'x-api-key': s.key } }).then((r) => r.text())
      await sleep(500)
      const idle = await count()
      const ac = new AbortController()
      const pulls = Array.from({ length: PARKED }, () =>
        fetch(`${cp.url}/jobs/pull`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': s.key },
          body: JSON.stringify({ handlers: ['bench.none'], max: 8, waitMs: 25_000 }),
          signal: ac.signal,
        }).then(
          (r) => r.status,
          () => 'aborted',
        ),
      )
      // Every pull claims once before it parks (one claim at a time per process); sample while they get there and after.
      let peak = { byName: 0, bySocket: 0, queries: [] }
      const t1 = clock()
      while (clock() - t1 < 6000) {
        const c = await count()
        if (c.byName > peak.byName) peak = { ...c, bySocket: Math.max(peak.bySocket, c.bySocket) }
        else peak.bySocket = Math.max(peak.bySocket, c.bySocket)
        await sleep(200)
      }
      const end = await count()
      ac.abort()
      const statuses = await Promise.all(pulls)
      out[kind] = { idle, peak, end, early: statuses.filter((x) => x !== 'aborted').length }
    } finally {
      await cp.stop()
    }
  }
  return out
}

// ─── The run ──────────────────────────────────────────────────────────────
const fmt = (n, d = 0) => (n === undefined || !Number.isFinite(n) ? '—' : n >= 100 && d === 0 ? Math.round(n).toLocaleString('en-US') : n.toFixed(d || 2))
await admin.unsafe(`CREATE DATABASE ${dbName}`)
const results = {}
const loads = []
const sampleLoad = setInterval(() => loads.push(loadavg()[0]), 5000)
sampleLoad.unref()
const latency = {}
let conn
try {
  const [{ v }] = await admin`SELECT current_setting('server_version') AS v`
  log(`PostgreSQL ${v}, database ${dbName}; ${JOBS} jobs per scenario; ${WORKERS} worker processes × concurrency ${CONCURRENCY}; producer ${CREATE_CONCURRENCY} creates at a time; node ${process.version}, ${cpus().length} cores (shared)`)
  const runOne = async (key, o) => {
    const r = await scenario(o)
    results[key] = r
    log(
      `${o.label.padEnd(34)} ${fmt(r.jobsPerSec).padStart(7)} jobs/s e2e${r.stagesPer > 1 ? ` (${fmt(r.stagesPerSec)} stages/s)` : ''}, ${fmt(r.createsPerSec).padStart(7)} creates/s, p50 ${fmt(r.p50, 1)} ms, p99 ${fmt(r.p99, 1)} ms` +
        (r.commits !== undefined ? `, ${fmt(r.commitsPerStage)} commits/${r.stagesPer > 1 ? 'stage' : 'job'}` : '') +
        (r.errors ? `, ${r.errors} errors` : '') +
        `  [${r.wallSecs.toFixed(1)} s]`,
    )
  }
  if (ONLY.includes('onepipe')) await runOne('op', { system: 'onepipe', label: 'OnePipe, 1 control plane', count: JOBS })
  if (ONLY.includes('pgboss')) await runOne('pgboss', { system: 'pgboss', label: 'pg-boss', count: JOBS })
  if (ONLY.includes('graphile')) await runOne('graphile', { system: 'graphile', label: 'graphile-worker', count: JOBS })
  if (ONLY.includes('bullmq')) await runOne('bullmq', { system: 'bullmq', label: 'BullMQ (Redis)', count: JOBS })
  if (ONLY.includes('onepipe')) {
    await runOne('opInproc', { system: 'onepipe', label: 'OnePipe, 1 CP, Pipeline.run()', producer: 'onepipe-inproc', count: JOBS })
    if (MULTI) await runOne('op3', { system: 'onepipe', label: 'OnePipe, 3 control planes', cps: 3, count: JOBS })
    await runOne('opDiamond', { system: 'onepipe', label: 'OnePipe, 4-stage diamonds', shape: 'diamond', count: Math.round(JOBS / 4) })
  }
  for (const [key, system, label, producer = system] of [
    ['op', 'onepipe', 'OnePipe'],
    ['opInproc', 'onepipe', 'OnePipe, Pipeline.run()', 'onepipe-inproc'],
    ['pgboss', 'pgboss', 'pg-boss'],
    ['graphile', 'graphile', 'graphile-worker'],
    ['bullmq', 'bullmq', 'BullMQ'],
  ]) {
    if (!ONLY.includes(system)) continue
    const r = await scenario({ system, label: `${label} latency`, count: LAT_JOBS, mode: 'latency', countCommits: false, producer })
    latency[key] = { label, ...r }
    log(`latency ${label.padEnd(24)} create → received: p50 ${fmt(r.p50, 1)} ms, p99 ${fmt(r.p99, 1)} ms, max ${fmt(r.max, 1)} ms (${LAT_JOBS} jobs, one every ${SPACING_MS} ms; the create call itself p50 ${fmt(r.createP50, 1)} ms)`)
  }
  if (ONLY.includes('onepipe')) {
    conn = await connections()
    for (const k of ['cold', 'warm']) {
      const c = conn[k]
      log(`connections (${k}): control-plane process before ${c.idle.byName} (application_name) / ${c.idle.bySocket} (sockets); with ${PARKED} parked pulls: peak ${c.peak.byName} / ${c.peak.bySocket}, after 6 s ${c.end.byName} / ${c.end.bySocket}; ${c.early} pulls answered early`)
      const qs = new Map()
      for (const q of c.peak.queries) qs.set(q, (qs.get(q) ?? 0) + 1)
      for (const [q, n] of qs) log(`    ${n} × last statement: ${q}`)
    }
  }
} finally {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
  if (ONLY.includes('bullmq')) {
    const { Queue } = await import('bullmq')
    const url = new URL(REDIS_URL)
    for (const q of bullQueues) {
      const queue = new Queue(q, { connection: { host: url.hostname, port: Number(url.port || 6379) } })
      await queue.obliterate({ force: true }).catch(() => {})
      await queue.close()
    }
  }
  await admin.end()
  killAll()
}

// ─── Tables ─────────────────────────────────────────────────────────────────
const rows = Object.values(results)
const lines = [
  `\nPipelines: ${JOBS} no-op jobs end to end (create → pull → ack), ${WORKERS} worker processes × concurrency ${CONCURRENCY}, ${CREATE_CONCURRENCY} creates at a time; load average during the run ${loads.length ? (loads.reduce((a, b) => a + b, 0) / loads.length).toFixed(1) : loadavg()[0].toFixed(1)} on ${cpus().length} cores`,
  '| system | jobs/s end to end | creates/s | create → done p50 | p99 | commits per job | commits per stage |',
  '|---|---:|---:|---:|---:|---:|---:|',
]
for (const r of rows) {
  const jobs = r.stagesPer > 1 ? `${fmt(r.jobsPerSec)} (${fmt(r.stagesPerSec)} stages/s)` : fmt(r.jobsPerSec)
  lines.push(`| ${r.label}${r.stagesPer > 1 ? ` (${r.count} pipelines)` : ''} | ${jobs} | ${fmt(r.createsPerSec)} | ${fmt(r.p50, 1)} ms | ${fmt(r.p99, 1)} ms | ${fmt(r.commitsPerJob)} | ${r.system === 'onepipe' ? fmt(r.commitsPerStage) : '—'} |`)
}
log(lines.join('\n'))
const op = results.op
for (const [key, name] of [
  ['pgboss', 'pg-boss'],
  ['graphile', 'graphile-worker'],
  ['bullmq', 'BullMQ'],
]) {
  const p = results[key]
  if (!op || !p) continue
  printTable(`OnePipe (1 control plane, POST /pipelines) vs ${name}`, name, [
    { name: 'jobs/s end to end', ours: op.jobsPerSec, peer: p.jobsPerSec, unit: '' },
    { name: 'creates/s', ours: op.createsPerSec, peer: p.createsPerSec, unit: '' },
    { name: 'create → done p50', ours: op.p50, peer: p.p50, unit: 'ms', higherIsBetter: false },
    { name: 'create → done p99', ours: op.p99, peer: p.p99, unit: 'ms', higherIsBetter: false },
    { name: 'commits per job', ours: op.commitsPerJob, peer: p.commitsPerJob ?? null, unit: '', higherIsBetter: false },
    ...(latency.op && latency[key] ? [{ name: `latency: create → received p50 (one every ${SPACING_MS} ms)`, ours: latency.op.p50, peer: latency[key].p50, unit: 'ms', higherIsBetter: false }] : []),
    ...(latency.op && latency[key] ? [{ name: 'latency: create → received p99', ours: latency.op.p99, peer: latency[key].p99, unit: 'ms', higherIsBetter: false }] : []),
  ])
}
if (op) {
  const t = []
  const ratio = (key) => (results[key] ? `${(op.jobsPerSec / results[key].jobsPerSec).toFixed(2)}×` : 'not run')
  t.push(`\nTargets: ≥ 1.0× pg-boss (${ratio('pgboss')}) and graphile-worker (${ratio('graphile')}) jobs/s end to end;`)
  t.push(`  ≤ 3 commits per stage (single stage ${fmt(op.commitsPerStage)}${results.opInproc ? `, created with Pipeline.run() ${fmt(results.opInproc.commitsPerStage)}` : ''}${results.opDiamond ? `, diamond ${fmt(results.opDiamond.commitsPerStage)}` : ''});`)
  if (latency.op) t.push(`  ≤ 10 ms p50 create → received (POST /pipelines ${fmt(latency.op.p50, 1)} ms, of which the create call ${fmt(latency.op.createP50, 1)} ms${latency.opInproc ? `; Pipeline.run() ${fmt(latency.opInproc.p50, 1)} ms, of which the call ${fmt(latency.opInproc.createP50, 1)} ms` : ''});`)
  if (conn) t.push(`  ≤ 2 PostgreSQL connections of one control-plane process with ${PARKED} parked pulls (first requests of a fresh process: peak ${conn.cold.peak.byName}, ${conn.cold.end.byName} after 6 s; after one warm-up request: peak ${conn.warm.peak.byName}, ${conn.warm.end.byName} after 6 s; counted by application_name, the same by its sockets in /proc: ${conn.cold.peak.bySocket} / ${conn.warm.peak.bySocket}).`)
  log(t.join('\n'))
}
log('The machine is shared; figures are as measured in this run. Nothing is pinned to a core: PostgreSQL, Redis, the control plane, workers and producer share the cores.')
process.exit(0)
