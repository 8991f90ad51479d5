// Another instance of the app: subscribes to the benchmark flow and records,
// for each event, the time from the append call (carried in the event) to
// its delivery here. Talks to run.mjs over IPC.
import { Database, Flow } from '@onepipe/sdk'

const { DATABASE_URL, SCHEMA, FLOW } = process.env
const db = Database.create('bench-sub').postgres(DATABASE_URL).schema(SCHEMA).pool({ max: 2 }).build()
const flow = Flow.create(FLOW).db(db).build()
let latencies = []
let received = 0
const stop = flow.subscribe((e) => {
  received++
  latencies.push(Date.now() - e.data.t)
})
await stop.ready
process.send({ ready: true })
process.on('message', async (m) => {
  if (m.cmd === 'report') {
    process.send({ received, latencies })
    latencies = []
    received = 0
  } else if (m.cmd === 'exit') {
    await stop()
    await flow.close()
    await db.close()
    process.exit(0)
  }
})
