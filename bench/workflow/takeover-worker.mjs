// One executor for bench/workflow/takeover.mjs: runs `hold` runs whose one
// step records when it started (database clock) and then waits until the
// run is taken from it. Prints READY once its engine runs.
// Env: DATABASE_URL, SCHEMA, HEARTBEAT, STALE_AFTER, POLL (ms)
import { Database, Workflow, WorkflowEngine, silentLogger } from '@onepipe/sdk'

const { DATABASE_URL, SCHEMA, HEARTBEAT, STALE_AFTER, POLL } = process.env
const db = Database.create('takeover').postgres(DATABASE_URL).schema(SCHEMA).pool({ max: 4 }).build()
const hold = Workflow.create('hold')
  .db(db)
  .define(async (ctx) => {
    await ctx.step('hold', async (signal) => {
      await db.execute('INSERT INTO takeover_effects (run_id, pid) VALUES ($1, $2)', [ctx.workflowId, process.pid])
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
    })
  })
  .build()
// Busy: many short steps, each stamped, so the victim is mid-statement and mid-step when it is signalled.
const busy = Workflow.create('busy')
  .db(db)
  .define(async (ctx) => {
    for (let i = 0; i < 100_000; i++) {
      await ctx.step('tick', async () => {
        await db.execute('INSERT INTO takeover_effects (run_id, pid) VALUES ($1, $2)', [ctx.workflowId, process.pid])
        await new Promise((r) => setTimeout(r, 20))
      })
    }
  })
  .build()
const engine = new WorkflowEngine({
  db,
  workflows: [hold, busy],
  instanceId: `p${process.pid}`,
  heartbeat: Number(HEARTBEAT),
  staleAfter: Number(STALE_AFTER),
  poll: Number(POLL),
  logger: silentLogger,
})
await engine.start()
console.log(`READY ${process.pid}`)
process.on('SIGTERM', () => void engine.stop().then(() => db.close()).then(() => process.exit(0)))
