// One worker process of bench/pipelines, forked by run.mjs with an IPC
// channel. Usage (forked): worker.mjs <onepipe|pgboss|graphile|bullmq>
//   env: CONCURRENCY (8), MODE (throughput | latency), DATABASE_URL, CP_URL,
//        API_KEY, HANDLERS (JSON), QUEUE, REDIS_URL
// Each job is a no-op. The payload carries `t`, the producer's clock when it
// asked for the job to be created; the worker records, per job, the time from
// `t` to the job's completion (throughput mode: after the ack / complete
// returned) or to the moment the worker received it (latency mode).
// Messages to the parent: { ready }, { done: n } every 50 ms while jobs
// complete, and at 'stop' { stats } before exiting.
const system = process.argv[2]
const C = Number(process.env.CONCURRENCY ?? 8)
const MODE = process.env.MODE ?? 'throughput'
const clock = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const lat = [] // ms from create request to completion (or receipt)
let done = 0 // completions (stages for OnePipe)
let reported = 0
let last = 0 // clock of the last completion
let errors = 0
let running = true

function completed(t, at = clock()) {
  done++
  last = at
  if (MODE === 'throughput' && typeof t === 'number') lat.push(at - t)
}
function received(t, at = clock()) {
  if (MODE === 'latency' && typeof t === 'number') lat.push(at - t)
}
const progress = setInterval(() => {
  if (done !== reported) {
    process.send({ done: done - reported })
    reported = done
  }
}, 50)

let stopper = async () => {}
process.on('message', async (m) => {
  if (m !== 'stop') return
  running = false
  try {
    await stopper()
  } catch (e) {
    process.stderr.write(`worker ${system} stop: ${e?.message ?? e}\n`)
  }
  clearInterval(progress)
  if (done !== reported) process.send({ done: done - reported })
  process.send({ stats: { lat, done, last, errors } }, () => process.exit(0))
})

// ─── OnePipe: the worker protocol over HTTP (docs/protocol/workers.md) ─────────
// A job holds one of CONCURRENCY slots while its handler runs; acks go in
// batches ({ acks: [...] }, one ack request at a time per worker), and the
// worker stops pulling while 2 × CONCURRENCY acks are not yet answered.
async function onepipe() {
  const base = process.env.CP_URL
  const handlers = JSON.parse(process.env.HANDLERS)
  const call = async (path, body, headers, signal) => {
    const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal })
    const text = await res.text()
    if (res.status >= 300 && res.status !== 204) throw new Error(`${path}: ${res.status} ${text.slice(0, 300)}`)
    return { status: res.status, body: text ? JSON.parse(text) : undefined }
  }
  const boot = await call('/workers/bootstrap', { name: `bench-${process.pid}`, handlers, concurrency: C }, { 'x-api-key': process.env.API_KEY })
  const auth = { authorization: `Bearer ${boot.body.sessionToken}` }
  let busy = 0
  const unacked = [] // waiting to be sent
  let acking = 0 // sent, not answered
  let nudge = () => {}
  const wakePuller = () => nudge()
  const ac = new AbortController()

  async function flush() {
    if (acking > 0 || unacked.length === 0) return
    const batch = unacked.splice(0, 100)
    acking = batch.length
    try {
      const r = await call('/jobs/ack', { acks: batch.map((b) => b.ack) }, auth)
      const at = clock()
      r.body.results.forEach((res, i) => {
        if (res.status === 200) {
          if (batch[i].final) completed(batch[i].t, at)
          else done++
        } else errors++
      })
    } catch (e) {
      errors += batch.length
      process.stderr.write(`worker onepipe ack: ${e.message}\n`)
    } finally {
      acking = 0
    }
    wakePuller()
    if (unacked.length > 0) flush()
  }

  async function run(job) {
    busy++
    const t = job.input?.t
    received(t)
    await null // the handler: a no-op
    busy--
    // A single-stage pipeline completes with its stage; a diamond with stage d.
    unacked.push({ ack: { executionId: job.executionId, status: 'completed', output: null }, t, final: job.stageName === 's' || job.stageName === 'd' })
    flush()
    wakePuller()
  }

  const loop = (async () => {
    while (running) {
      const free = C - busy
      if (free <= 0 || unacked.length + acking >= 2 * C) {
        await new Promise((r) => (nudge = r))
        nudge = () => {}
        continue
      }
      let r
      try {
        r = await call('/jobs/pull', { handlers, max: free, waitMs: 5000 }, auth, ac.signal)
      } catch (e) {
        if (!running) break
        errors++
        process.stderr.write(`worker onepipe pull: ${e.message}\n`)
        await sleep(100)
        continue
      }
      if (r.status === 204) continue
      for (const job of r.body.jobs) run(job)
    }
  })()
  stopper = async () => {
    ac.abort()
    wakePuller()
    await loop
    while (unacked.length + acking > 0) {
      flush()
      await sleep(5)
    }
    await call('/workers/shutdown', {}, auth).catch(() => {})
  }
}

// ─── pg-boss 10: CONCURRENCY loops of fetch (one job) → complete ───────────────
async function pgboss() {
  const { default: PgBoss } = await import('pg-boss')
  const queue = process.env.QUEUE
  const boss = new PgBoss({ connectionString: process.env.DATABASE_URL, schema: 'pgboss' })
  boss.on('error', (e) => process.stderr.write(`pg-boss: ${e.message}\n`))
  await boss.start()
  const loops = Array.from({ length: C }, async () => {
    while (running) {
      const [job] = await boss.fetch(queue)
      if (!job) {
        // pg-boss has no push: an idle loop polls again after 100 ms (its own work() polls every 0.5 s or more).
        await sleep(100)
        continue
      }
      received(job.data?.t)
      await boss.complete(queue, job.id)
      completed(job.data?.t)
    }
  })
  stopper = async () => {
    await Promise.all(loops)
    await boss.stop({ graceful: false, wait: true })
  }
}

// ─── graphile-worker 0.17: run() with concurrency CONCURRENCY, one task ───────
async function graphile() {
  const { run, Logger } = await import('graphile-worker')
  // Generous to the peer: no log line per job.
  const logger = new Logger(() => (level, message) => {
    if (level === 'error') process.stderr.write(`graphile-worker: ${message}\n`)
  })
  const runner = await run({
    connectionString: process.env.DATABASE_URL,
    concurrency: C,
    noHandleSignals: true,
    logger,
    taskList: {
      bench: async (payload) => {
        received(payload?.t)
      },
    },
  })
  // 'job:success' is emitted when the task returned; graphile then completes the row without waiting (one round trip later).
  runner.events.on('job:success', ({ job }) => completed(job.payload?.t))
  stopper = () => runner.stop()
}

// ─── BullMQ 6: Worker with concurrency CONCURRENCY on Redis ───────────────────
async function bullmq() {
  const { Worker } = await import('bullmq')
  const url = new URL(process.env.REDIS_URL)
  const worker = new Worker(
    process.env.QUEUE,
    async (job) => {
      received(job.data?.t)
    },
    { connection: { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null }, concurrency: C },
  )
  worker.on('completed', (job) => completed(job.data?.t))
  worker.on('error', (e) => process.stderr.write(`bullmq: ${e.message}\n`))
  await worker.waitUntilReady()
  stopper = () => worker.close(true)
}

const systems = { onepipe, pgboss, graphile, bullmq }
await systems[system]()
process.send({ ready: true })
