// One server process with the same work behind three doors: a bare Hono
// handler, a Channel without idempotency, and a Channel with idempotency.
// The work: validate { orderId, amount } and INSERT the charge.
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { z } from 'zod'
import { Channel, Database, silentLogger } from '@onepipe/sdk'

const { DATABASE_URL, SCHEMA } = process.env
const db = Database.create('bench').postgres(DATABASE_URL).schema(SCHEMA).pool({ max: 20 }).build()
await db.ready()
await db.execute('CREATE TABLE IF NOT EXISTS bench_charges (order_id text NOT NULL, amount int NOT NULL)')
const Charge = z.object({ orderId: z.string().min(1), amount: z.number().int().positive() })
const charge = async (i) => {
  await db.execute('INSERT INTO bench_charges (order_id, amount) VALUES ($1, $2)', [i.orderId, i.amount])
  return { ok: true, orderId: i.orderId }
}

const app = new Hono()
app.post('/bare/charge', async (c) => {
  let body
  try {
    body = await c.req.json()
  } catch {
    return c.json({ error: { code: 'VALIDATION_FAILED' } }, 400)
  }
  const r = Charge.safeParse(body)
  if (!r.success) return c.json({ error: { code: 'VALIDATION_FAILED' } }, 400)
  return c.json({ result: await charge(r.data) })
})

const rt = { instanceId: 'bench', db, cache: undefined, logger: silentLogger, signal: new AbortController().signal }
// No .db() and no idempotency: nothing recorded, the handler's INSERT is the only query.
const plain = Channel.create('charge-plain').input(Charge).handler(charge).build()
const idem = Channel.create('charge-idem').input(Charge).db(db).idempotency((i) => i.orderId, { ttl: '1h' }).handler(charge).build()
// routes() without a runtime context: the plain channel stays without a database (no history rows).
plain.routes(app)
idem.routes(app, rt)
await idem.attach(rt)

const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => console.log(`PORT=${info.port}`))
process.once('SIGTERM', () => {
  server.close()
  void idem.detach().then(() => db.close()).then(() => process.exit(0))
})
