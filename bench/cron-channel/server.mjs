// One server process with the same work behind several doors: a bare Hono
// handler (also inside db.transaction(), for what one transaction costs), a
// Channel without idempotency, a Channel with idempotency (lease mode) and a
// transactional Channel. The work: validate { orderId, amount } and INSERT the charge.
// Beside them, the same exactly-once call written by hand with postgres.js:
// the least any exactly-once implementation sends, for the transactional
// Channel to be read against.
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import postgres from 'postgres'
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
/** The bare routes' input: the parsed charge, or undefined when the body is not one. */
const readCharge = async (c) => {
  try {
    const r = Charge.safeParse(await c.req.json())
    return r.success ? r.data : undefined
  } catch {
    return undefined
  }
}
const invalid = (c) => c.json({ error: { code: 'VALIDATION_FAILED' } }, 400)

app.post('/bare/charge', async (c) => {
  const i = await readCharge(c)
  if (!i) return invalid(c)
  return c.json({ result: await charge(i) })
})
app.post('/bare/charge-tx', async (c) => {
  const i = await readCharge(c)
  if (!i) return invalid(c)
  const result = await db.transaction(async (tx) => {
    await tx.execute('INSERT INTO bench_charges (order_id, amount) VALUES ($1, $2)', [i.orderId, i.amount])
    return { ok: true, orderId: i.orderId }
  })
  return c.json({ result })
})

// Exactly-once by hand, on its own pool of the same size: the key's lock and
// the look-up go out with BEGIN, then the handler's INSERT, then the marker
// row (the recorded result) with COMMIT. Three round trips, one commit, and
// nothing else: no history row, no lease, no retry, no timeout, no undo point.
const raw = postgres(DATABASE_URL, { max: 20, onnotice: () => undefined, connection: { search_path: SCHEMA } })
await raw.unsafe(
  'CREATE TABLE IF NOT EXISTS bench_once (key text PRIMARY KEY, result jsonb NOT NULL, expires_at timestamptz NOT NULL)',
)
app.post('/hand/charge-once', async (c) => {
  const i = await readCharge(c)
  if (!i) return invalid(c)
  const conn = await raw.reserve()
  try {
    const begun = conn.unsafe('begin').execute()
    const locked = conn.unsafe('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [i.orderId], { prepare: true }).execute()
    const stored = conn.unsafe('SELECT result FROM bench_once WHERE key = $1 AND expires_at > now()', [i.orderId], { prepare: true }).execute()
    await begun
    await locked
    const [hit] = await stored
    if (hit) {
      await conn.unsafe('rollback')
      return c.json({ result: hit.result })
    }
    await conn.unsafe('INSERT INTO bench_charges (order_id, amount) VALUES ($1, $2)', [i.orderId, i.amount], { prepare: true })
    const result = { ok: true, orderId: i.orderId }
    const marked = conn
      .unsafe(
        "INSERT INTO bench_once (key, result, expires_at) VALUES ($1, $2::text::jsonb, now() + interval '1 hour') ON CONFLICT (key) DO UPDATE SET result = excluded.result, expires_at = excluded.expires_at",
        [i.orderId, JSON.stringify(result)],
        { prepare: true },
      )
      .execute()
    const committed = conn.unsafe('commit').execute()
    await marked
    await committed
    return c.json({ result })
  } catch (e) {
    await conn.unsafe('rollback').catch(() => undefined)
    throw e
  } finally {
    conn.release()
  }
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
    .then(() => Promise.all([db.close(), raw.end({ timeout: 5 })]))
    .then(() => process.exit(0))
})
