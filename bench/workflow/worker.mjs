// One benchmark phase in its own process, so its connections close (and
// PostgreSQL flushes their commit counters) when it exits.
// Usage: node worker.mjs <setup|onepipe|dbos> <count> <concurrency>   (DATABASE_URL, POOL)
const [system, countArg, concArg] = process.argv.slice(2)
const URL_ = process.env.DATABASE_URL
const POOL = Number(process.env.POOL ?? 20)
const count = Number(countArg)
const concurrency = Number(concArg)

async function drive(runOne) {
  let next = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++
        await runOne(i)
      }
    }),
  )
  return performance.now() - t0
}

async function onepipe() {
  const { Database, Workflow, WorkflowEngine, silentLogger } = await import('@onepipe/sdk')
  const db = Database.create('bench').postgres(URL_).pool({ max: POOL }).build()
  const wf = Workflow.create('bench3')
    .db(db)
    .define(async (ctx, i) => {
      const a = await ctx.step('one', async () => i)
      const b = await ctx.step('two', async () => a + 1)
      return ctx.step('three', async () => b + 1)
    })
    .build()
  const engine = new WorkflowEngine({ db, workflows: [wf], concurrency: Math.max(100, concurrency), logger: silentLogger })
  await engine.start()
  const ms = await drive(async (i) => {
    const h = await wf.start(i)
    const out = await h.result()
    if (out !== i + 2) throw new Error(`wrong result ${out} for ${i}`)
  })
  await engine.stop()
  await db.close()
  return ms
}

async function dbos() {
  const { DBOS } = await import('@dbos-inc/dbos-sdk')
  DBOS.setConfig({ name: 'bench', systemDatabaseUrl: URL_, systemDatabasePoolSize: POOL, logLevel: 'error' })
  const wf = DBOS.registerWorkflow(
    async (i) => {
      const a = await DBOS.runStep(async () => i, { name: 'one' })
      const b = await DBOS.runStep(async () => a + 1, { name: 'two' })
      return DBOS.runStep(async () => b + 1, { name: 'three' })
    },
    { name: 'bench3' },
  )
  await DBOS.launch()
  const ms = await drive(async (i) => {
    // A direct call runs the workflow durably and returns its result: DBOS's fastest path.
    const out = process.env.DBOS_HANDLE === '1' ? await (await DBOS.startWorkflow(wf)(i)).getResult() : await wf(i)
    if (out !== i + 2) throw new Error(`wrong result ${out} for ${i}`)
  })
  await DBOS.shutdown()
  return ms
}

async function setup() {
  const { Database } = await import('@onepipe/sdk')
  const db = Database.create('bench').postgres(URL_).build()
  await db.ready()
  await db.close()
  const { DBOS } = await import('@dbos-inc/dbos-sdk')
  await DBOS.migrate(URL_)
  return 0
}

const ms = system === 'setup' ? await setup() : system === 'onepipe' ? await onepipe() : await dbos()
process.stdout.write(JSON.stringify({ system, count, concurrency, ms }) + '\n')
process.exit(0)
