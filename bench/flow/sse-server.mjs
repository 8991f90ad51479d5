// An app instance serving the benchmark flow's SSE stream, with /stats
// reporting memory after a full GC, so run.mjs can see what the server holds
// for a client that reads nothing. Sends { port } over IPC.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { Database, Flow } from '@onepipe/sdk'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')
const { DATABASE_URL, SCHEMA, FLOW } = process.env
const db = Database.create('bench-sse').postgres(DATABASE_URL).schema(SCHEMA).pool({ max: 4 }).build()
const flow = Flow.create(FLOW).db(db).build()
const app = new Hono()
flow.routes(app)
app.get('/stats', () => {
  gc()
  const m = process.memoryUsage()
  return Response.json({ heapUsed: m.heapUsed, external: m.external })
})
await db.ready()
const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => process.send({ port: info.port }))
process.on('message', (m) => {
  if (m.cmd === 'exit') {
    server.close()
    void flow.close().then(() => db.close()).then(() => process.exit(0))
  }
})
