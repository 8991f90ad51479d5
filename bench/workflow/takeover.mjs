// bench/workflow takeover: how long after an executor is killed (SIGKILL) or
// paused (SIGSTOP) another one takes its runs over, on the database clock.
// Per trial: a victim claims RUNS runs whose step waits forever, a survivor
// starts, the victim is signalled; the takeover is when the survivor's step
// starts (a row stamped now()). Both figures are printed: from the signal,
// and from the victim's last heartbeat (what `staleAfter` counts from).
// Usage: node bench/workflow/takeover.mjs [kill|stop ...]
//   WORKLOAD (hold: one step that waits; busy: a stream of 20 ms steps), ADMIN_URL, TRIALS (3), RUNS (5), HEARTBEAT (10000), STALE_AFTER (30000), POLL (1000), SPREAD (random pause before
//   the signal, ms; default one heartbeat, so the signal lands anywhere in the heartbeat cycle)
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'

const ADMIN_URL = process.env.ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const TRIALS = Number(process.env.TRIALS ?? 3)
const RUNS = Number(process.env.RUNS ?? 5)
const HEARTBEAT = Number(process.env.HEARTBEAT ?? 10_000)
const STALE_AFTER = Number(process.env.STALE_AFTER ?? 30_000)
const POLL = Number(process.env.POLL ?? 1000)
const WORKLOAD = process.env.WORKLOAD ?? 'hold'
const SPREAD = Number(process.env.SPREAD ?? HEARTBEAT)
const modes = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['kill', 'stop']
const worker = fileURLToPath(new URL('./takeover-worker.mjs', import.meta.url))
const schema = `takeover_${randomBytes(4).toString('hex')}`
const sql = postgres(ADMIN_URL, { max: 2, onnotice: () => {}, connection: { search_path: schema } })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function start() {
  const env = { ...process.env, DATABASE_URL: ADMIN_URL, SCHEMA: schema, HEARTBEAT: String(HEARTBEAT), STALE_AFTER: String(STALE_AFTER), POLL: String(POLL) }
  const child = spawn(process.execPath, [worker], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  const ready = new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('READY')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`worker exited ${code}: ${out}`)))
  })
  const exited = new Promise((r) => child.once('exit', r))
  return { child, ready, exited }
}

async function until(fn, ms, what) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

async function trial(mode, n) {
  const victim = start()
  await victim.ready
  const ids = Array.from({ length: RUNS }, (_, i) => `${mode}-${n}-${i}`)
  const { Database, Workflow } = await import('@onepipe/sdk')
  const db = Database.create('takeover-client').postgres(ADMIN_URL).schema(schema).pool({ max: 2 }).build()
  const hold = Workflow.create(WORKLOAD).db(db).define(async () => undefined).build()
  for (const id of ids) await hold.start(undefined, { workflowId: id })
  await until(async () => (await sql`SELECT count(DISTINCT run_id)::int AS n FROM takeover_effects WHERE run_id = ANY(${ids}) AND pid = ${victim.child.pid}`)[0].n === RUNS, 30_000, 'the victim to hold every run')
  await db.close()
  // The survivor's scan timer starts at a random point of the victim's heartbeat cycle, as on a real deployment.
  await sleep(Math.random() * HEARTBEAT)
  const survivor = start()
  await survivor.ready
  await sleep(Math.random() * SPREAD)
  victim.child.kill(mode === 'kill' ? 'SIGKILL' : 'SIGSTOP')
  const [{ at: signalled }] = await sql`SELECT now() AS at`
  const lastBeat = new Map((await sql`SELECT workflow_id, heartbeat_at FROM _onepipe_workflows WHERE workflow_id = ANY(${ids})`).map((r) => [r.workflow_id, r.heartbeat_at]))
  const limit = STALE_AFTER * 3 + 30_000
  const taken = await until(async () => {
    const rows = await sql`SELECT run_id, min(at) AS at FROM takeover_effects WHERE run_id = ANY(${ids}) AND pid = ${survivor.child.pid} GROUP BY run_id`
    return rows.length === RUNS && rows
  }, limit, 'the survivor to take every run over')
  victim.child.kill('SIGKILL')
  survivor.child.kill('SIGKILL')
  await Promise.all([victim.exited, survivor.exited])
  const fromSignal = taken.map((r) => r.at - signalled)
  const fromBeat = taken.map((r) => r.at - lastBeat.get(r.run_id))
  return { fromSignal, fromBeat }
}

const s = (ms) => (ms / 1000).toFixed(1)
await sql.unsafe(`CREATE SCHEMA ${schema}`)
try {
  const { Database } = await import('@onepipe/sdk')
  const setup = Database.create('takeover-setup').postgres(ADMIN_URL).schema(schema).build()
  await setup.ready()
  await setup.execute('CREATE TABLE takeover_effects (run_id text NOT NULL, pid int NOT NULL, at timestamptz NOT NULL DEFAULT now())')
  await setup.close()
  console.log(`heartbeat ${s(HEARTBEAT)} s, staleAfter ${s(STALE_AFTER)} s, poll ${s(POLL)} s, ${RUNS} runs per trial`)
  for (const mode of modes) {
    const all = { fromSignal: [], fromBeat: [] }
    for (let n = 1; n <= TRIALS; n++) {
      const r = await trial(mode, n)
      all.fromSignal.push(...r.fromSignal)
      all.fromBeat.push(...r.fromBeat)
      console.log(`${mode} trial ${n}: taken over ${s(Math.min(...r.fromSignal))}–${s(Math.max(...r.fromSignal))} s after the signal, ${s(Math.min(...r.fromBeat))}–${s(Math.max(...r.fromBeat))} s after the last heartbeat`)
    }
    console.log(`${mode}: ${s(Math.min(...all.fromSignal))}–${s(Math.max(...all.fromSignal))} s after the signal; ${s(Math.min(...all.fromBeat))}–${s(Math.max(...all.fromBeat))} s after the last heartbeat`)
  }
} finally {
  await sql.unsafe(`DROP SCHEMA ${schema} CASCADE`)
  await sql.end()
}
