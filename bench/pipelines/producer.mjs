// Creates the jobs of one scenario in a process of its own and prints one
// JSON line { n, start, end } (clock: performance.timeOrigin + now()).
// Usage: producer.mjs <onepipe|onepipe-inproc|pgboss|graphile|bullmq> <shape> <count> <concurrency> [spacingMs]
//   shape: single (one stage) or diamond (a; b and c in parallel; d after both; OnePipe only)
//   spacingMs > 0: one job at a time, a new one every spacingMs (latency scenario)
//   env: DATABASE_URL, SCHEMA, CP_URLS (JSON), API_KEY, APP_ID, QUEUE, REDIS_URL
const [system, shape, countArg, concArg, spacingArg] = process.argv.slice(2)
const count = Number(countArg)
const concurrency = Number(concArg)
const spacing = Number(spacingArg ?? 0)
const clock = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const single = (t) => ({ name: 'bench1', input: { t }, stages: [{ stageName: 's', stageHandlerName: 'bench.noop' }] })
const diamond = (t) => ({
  name: 'bench4',
  input: { t },
  stages: [
    { stageName: 'a', stageHandlerName: 'bench.a' },
    { stageName: 'b', stageHandlerName: 'bench.b', options: { runInParallelWith: ['c'] } },
    { stageName: 'c', stageHandlerName: 'bench.c' },
    { stageName: 'd', stageHandlerName: 'bench.d', options: { dependsOn: ['b', 'c'] } },
  ],
})

let create
let close = async () => {}
if (system === 'onepipe') {
  const urls = JSON.parse(process.env.CP_URLS)
  const def = shape === 'diamond' ? diamond : single
  let i = 0
  create = async (t) => {
    const res = await fetch(`${urls[i++ % urls.length]}/pipelines`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': process.env.API_KEY },
      body: JSON.stringify(def(t)),
    })
    const text = await res.text()
    if (res.status !== 201) throw new Error(`POST /pipelines: ${res.status} ${text.slice(0, 300)}`)
  }
} else if (system === 'onepipe-inproc') {
  const { Database, Pipeline } = await import('@onepipe/sdk')
  const db = Database.create('bench-producer').postgres(process.env.DATABASE_URL).schema(process.env.SCHEMA).pool({ max: 10 }).build()
  await db.ready()
  const b = Pipeline.create(shape === 'diamond' ? 'bench4' : 'bench1').db(db).application(process.env.APP_ID)
  const p = (shape === 'diamond'
    ? b.stage('a', { handler: 'bench.a' }).stage('b', { handler: 'bench.b', dependsOn: ['a'], parallelWith: ['c'] }).stage('c', { handler: 'bench.c', dependsOn: ['a'] }).stage('d', { handler: 'bench.d', dependsOn: ['b', 'c'] })
    : b.stage('s', { handler: 'bench.noop' })
  ).build()
  create = (t) => p.run({ t })
  close = () => db.close()
} else if (system === 'pgboss') {
  const { default: PgBoss } = await import('pg-boss')
  const boss = new PgBoss({ connectionString: process.env.DATABASE_URL, schema: 'pgboss' })
  await boss.start()
  create = (t) => boss.send(process.env.QUEUE, { t })
  close = () => boss.stop({ graceful: false, wait: true })
} else if (system === 'graphile') {
  const { makeWorkerUtils } = await import('graphile-worker')
  const utils = await makeWorkerUtils({ connectionString: process.env.DATABASE_URL })
  create = (t) => utils.addJob('bench', { t })
  close = () => utils.release()
} else if (system === 'bullmq') {
  const { Queue } = await import('bullmq')
  const url = new URL(process.env.REDIS_URL)
  const queue = new Queue(process.env.QUEUE, { connection: { host: url.hostname, port: Number(url.port || 6379) } })
  await queue.waitUntilReady()
  create = (t) => queue.add('bench', { t })
  close = () => queue.close()
}

const took = [] // spaced mode: how long each create call took
const start = clock()
if (spacing > 0) {
  for (let i = 0; i < count; i++) {
    const due = start + i * spacing
    const wait = due - clock()
    if (wait > 0) await sleep(wait)
    const t = clock()
    await create(t)
    took.push(clock() - t)
  }
} else {
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++
        await create(clock())
      }
    }),
  )
}
const end = clock()
await close()
process.stdout.write(JSON.stringify({ n: count, start, end, createP50: took.length ? took.sort((a, b) => a - b)[Math.ceil(took.length / 2) - 1] : null }) + '\n')
process.exit(0)
