// One server process with the same work behind several doors: a bare Hono
// handler (also inside db.transaction(), for what one transaction costs), a
// Channel without idempotency, a Channel with idempotency (lease mode) and a
// transactional Channel. The work: validate { orderId, amount } and INSERT the charge.
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
app.post('/bare/charge-tx', async (c) => {
  let body
  try {
    body = await c.req.json()
  } catch {
    return c.json({ error: { code: 'VALIDATION_FAILED' } }, 400)
  }
  const r = Charge.safeParse(body)
  if (!r.success) return c.json({ error: { code: 'VALIDATION_FAILED' } }, 400)
  const i = r.data
  const result = await db.transaction(async (tx) => {
    await tx.execute('INSERT INTO bench_charges (order_id, amount) VALUES ($1, $2)', [i.orderId, i.amount])
    return { ok: true, orderId: i.orderId }
  })
  return c.json({ result })
})

const rt = { instanceId: 'bench', db, cache: undefined, logger: silentLogger, signal: new AbortController().signal }
// No .db() and no idempotency: nothing recorded, the handler's INSERT is the only query.
const plain = Channel.create('charge-plain').input(Charge).handler(charge).build()
const idem = Channel.create('charge-idem').input(Charge).db(db).idempotency((i) => i.orderId, { ttl: '1h' }).handler(charge).build()
// The same INSERT through ctx.tx: the claim, the charge and the result commit together.
const tx = Channel.create('charge-tx')
  .input(Charge)
  .db(db)
  .idempotency((i) => i.orderId, { ttl: '1h' })
  .transactional()
  .handler(async (i, ctx) => {
    await ctx.tx.execute('INSERT INTO bench_charges (order_id, amount) VALUES ($1, $2)', [i.orderId, i.amount])
    return { ok: true, orderId: i.orderId }
  })
  .build()
// routes() without a runtime context: the plain channel stays without a database (no history rows).
plain.routes(app)
for (const ch of [idem, tx]) {
  ch.routes(app, rt)
  await ch.attach(rt)
}

const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => console.log(`PORT=${info.port}`))
process.once('SIGTERM', () => {
  server.close()
  void Promise.all([idem.detach(), tx.detach()])
    .then(() => db.close())
    .then(() => process.exit(0))
})
