// One of bench/flow's separate appender processes: its own Database and Flow,
// one append in flight at a time (each awaited before the next), so nothing
// it appends can share a statement with another append. Talks to run.mjs over
// IPC: { cmd: 'run', end } appends until Date.now() passes `end` (the same
// clock in every process) and answers { appended, finished }.
import { Database, Flow } from '@onepipe/sdk'

const { DATABASE_URL, SCHEMA, FLOW } = process.env
const db = Database.create('bench-appender').postgres(DATABASE_URL).schema(SCHEMA).pool({ max: 1 }).build()
const flow = Flow.create(FLOW).db(db).build()
await db.ready()
process.send({ ready: true })
process.on('message', async (m) => {
  if (m.cmd === 'run') {
    let appended = 0
    while (Date.now() < m.end) {
      await flow.append({ n: 3, t: Date.now() })
      appended++
    }
    process.send({ appended, finished: Date.now() })
  } else if (m.cmd === 'exit') {
    await flow.close()
    await db.close()
    process.exit(0)
  }
})
