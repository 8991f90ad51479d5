// bench/workflow: three-step no-op workflows, OnePipe beside DBOS Transact
// (@dbos-inc/dbos-sdk) on the same PostgreSQL in one run: 1,000 runs one
// after another, then 10,000 at concurrency 100, each "start and wait for the
// result". Commits per workflow come from pg_stat_database.xact_commit of a
// database created for the run (each phase runs in its own process, so its
// counters are flushed when it exits; start-up and background polling are
// included). OnePipe: start() + result(); DBOS: a direct call of the
// registered workflow, its fastest path (DBOS_HANDLE=1 uses startWorkflow +
// getResult instead). Usage: node bench/workflow/run.mjs
//   ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres), SEQ (1000), CONC_RUNS (10000), CONC (100), POOL (20)
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'
import { printTable } from '../lib/report.mjs'

const ADMIN_URL = process.env.ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const SEQ = Number(process.env.SEQ ?? 1000)
const CONC_RUNS = Number(process.env.CONC_RUNS ?? 10000)
const CONC = Number(process.env.CONC ?? 100)
const POOL = Number(process.env.POOL ?? 20)
const dbName = `onepipe_bench_wf_${randomBytes(4).toString('hex')}`
const u = new URL(ADMIN_URL)
u.pathname = `/${dbName}`
const BENCH_URL = u.toString()
const worker = fileURLToPath(new URL('./worker.mjs', import.meta.url))
const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function phase(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [worker, ...args.map(String)], { env: { ...process.env, DATABASE_URL: BENCH_URL, POOL: String(POOL) }, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.once('exit', (code) => {
      const line = out.trim().split('\n').at(-1)
      if (code !== 0 || !line) reject(new Error(`${args.join(' ')} exited ${code}: ${out}`))
      else resolve(JSON.parse(line))
    })
  })
}

async function commits() {
  // Exited backends flush their counters; wait until the figure settles.
  let last = -1
  for (let i = 0; i < 40; i++) {
    const [r] = await admin`SELECT xact_commit::float8 AS c FROM pg_stat_database WHERE datname = ${dbName}`
    if (r.c === last) return r.c
    last = r.c
    await sleep(250)
  }
  return last
}

async function measure(system, count, concurrency) {
  const before = await commits()
  const r = await phase([system, count, concurrency])
  const after = await commits()
  const perSec = count / (r.ms / 1000)
  console.log(`${system.padEnd(8)} ${String(count).padStart(6)} runs at concurrency ${String(concurrency).padStart(3)}: ${perSec.toFixed(1)} workflows/s, ${((after - before) / count).toFixed(2)} commits/workflow`)
  return { perSec, commitsPerWf: (after - before) / count }
}

await admin.unsafe(`CREATE DATABASE ${dbName}`)
try {
  await phase(['setup', 0, 1])
  const [{ v }] = await admin`SELECT current_setting('server_version') AS v`
  console.log(`PostgreSQL ${v}, database ${dbName}, pool ${POOL} per system, 3 no-op steps per workflow`)
  const opSeq = await measure('onepipe', SEQ, 1)
  const dbSeq = await measure('dbos', SEQ, 1)
  const opConc = await measure('onepipe', CONC_RUNS, CONC)
  const dbConc = await measure('dbos', CONC_RUNS, CONC)
  printTable('Workflow: three-step no-op workflows, start + wait for result', 'DBOS', [
    { name: `throughput, ${SEQ} sequential`, ours: opSeq.perSec, peer: dbSeq.perSec, unit: 'wf/s' },
    { name: `throughput, ${CONC_RUNS} at concurrency ${CONC}`, ours: opConc.perSec, peer: dbConc.perSec, unit: 'wf/s' },
    { name: 'commits per workflow, sequential', ours: opSeq.commitsPerWf, peer: dbSeq.commitsPerWf, unit: '', higherIsBetter: false },
    { name: `commits per workflow, concurrency ${CONC}`, ours: opConc.commitsPerWf, peer: dbConc.commitsPerWf, unit: '', higherIsBetter: false },
  ])
  console.log(`\nTargets: >= 1.5x DBOS at concurrency ${CONC} (measured ${(opConc.perSec / dbConc.perSec).toFixed(2)}x); <= steps + 2 = 5 commits per workflow (measured ${opConc.commitsPerWf.toFixed(2)} / ${opSeq.commitsPerWf.toFixed(2)}).`)
  console.log('The machine is shared; figures are as measured in this run.')
} finally {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
  await admin.end()
}
