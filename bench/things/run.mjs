// bench/things: Things beside the same operations hand-written in SQL on the
// same table (the floor), in one run on PostgreSQL, in alternating rounds:
//
// - create: Things.create (a transaction: the row, then its event appended
//   to the flow things.bench) beside a one-statement INSERT of the same row
//   (no event), and beside a hand-written transaction that inserts the row
//   and appends its event the way the flow does (the same guarantee);
// - get by id: Things.get beside one SELECT by primary key;
// - a filtered list: { status: 'open', amount: { $gt: 100 } } ordered by
//   -amount, limit 50, with `status` declared as an index, beside the same
//   query written by hand against the same index (both answers are checked
//   to be the same Things first); then the same filter ordered by
//   -customer, a field the filter does not pin to a type, so Things ranks
//   by JSON type before value while the hand-written query sorts strings.
//
// Each from 1 client (latency-bound) and from 16 concurrent loops of this
// process (both sides get a pool of 16 connections). Figures are operations
// per second, higher is better.
//
// Usage: node bench/run.mjs things  (DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/postgres; BENCH_SECONDS, default 5;
// BENCH_ROUNDS, default 2; BENCH_ROWS, default 20000; BENCH_ONLY=list runs
// only the measures whose name starts with it). The run's schema is dropped
// at the end.
import { randomBytes, randomUUID } from 'node:crypto'
import { loadavg } from 'node:os'
import postgres from 'postgres'
import { Database, Things } from '@onepipe/sdk'
import { printTable } from '../lib/report.mjs'

const URL_ = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)
const ROWS = Number(process.env.BENCH_ROWS ?? 20_000)
const LOOPS = 16
const ONLY = process.env.BENCH_ONLY // run only the measures whose name starts with this
const STATUSES = ['open', 'closed', 'pending', 'shipped', 'returned', 'draft', 'paid', 'lost', 'held', 'void']
const schema = `bench_things_${randomBytes(4).toString('hex')}`
const admin = postgres(URL_, { max: 1, onnotice: () => {} })
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ')
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length

/** Operations per second of `op` run back to back by `loops` concurrent loops for SECONDS. */
async function rate(op, loops) {
  let n = 0
  const t0 = performance.now()
  const end = Date.now() + SECONDS * 1000
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (Date.now() < end) {
        await op()
        n++
      }
    }),
  )
  return n / ((performance.now() - t0) / 1000)
}

const COLUMNS = 'id, type, data, version, created_at, updated_at, deleted_at'
const FILTER_SQL = `SELECT ${COLUMNS} FROM _onepipe_things
  WHERE things_name = $1 AND type = $2 AND deleted_at IS NULL
    AND (data #>> '{status}') COLLATE "C" = $3
    AND jsonb_typeof(data -> 'amount') = 'number' AND data -> 'amount' > $4::text::jsonb`
const LIST_SQL = `${FILTER_SQL} ORDER BY data -> 'amount' DESC, id LIMIT 50`
// By a field the filter says nothing about: by hand, strings in code point order (what Things does).
const BY_CUSTOMER_SQL = `${FILTER_SQL} ORDER BY (data ->> 'customer') COLLATE "C" DESC, id LIMIT 50`

const loadBefore = load()
const db = Database.create('bench').postgres(URL_).schema(schema).pool({ max: LOOPS }).build()
const floor = postgres(URL_, { max: LOOPS, onnotice: () => {}, connection: { search_path: `"${schema}"` } })
try {
  await db.ready()
  // The rows every read reads: ROWS orders, a tenth of them open, amounts 0-999.
  await admin.unsafe(
    `INSERT INTO "${schema}"._onepipe_things (things_name, type, id, data, version, created_at, updated_at)
     SELECT 'bench', 'Order', 'o' || g,
            jsonb_build_object('status', ($2::text[])[g % 10 + 1], 'amount', (g * 7919) % 1000, 'customer', 'c' || (g % 500), 'note', md5(g::text)),
            1, now(), now()
     FROM generate_series(1, $1::int) g`,
    [ROWS, STATUSES],
  )
  const things = Things.create('bench').db(db).noun('Order', undefined, { indexes: ['status'] }).build()
  const orders = things.noun('Order')
  await orders.count({ status: 'open' }) // creates the declared index
  await admin.unsafe(`ANALYZE "${schema}"._onepipe_things`)

  const where = { status: 'open', amount: { $gt: 100 } }
  const ours = {
    create: () => orders.create({ status: 'draft', amount: 42, customer: 'c1', note: 'bench' }),
    get: () => orders.get(`o${1 + Math.floor(Math.random() * ROWS)}`),
    list: () => orders.list({ where, orderBy: '-amount', limit: 50 }),
    listByCustomer: () => orders.list({ where, orderBy: '-customer', limit: 50 }),
  }
  const row = () => JSON.stringify({ status: 'draft', amount: 42, customer: 'c1', note: 'bench' })
  const insert = (q) => q.unsafe(`INSERT INTO _onepipe_things (things_name, type, id, data, version, created_at, updated_at) VALUES ($1, $2, $3, $4::text::jsonb, 1, now(), now()) RETURNING ${COLUMNS}`, ['bench', 'Order', randomUUID(), row()], { prepare: true })
  const hand = {
    create: () => insert(floor),
    // What the flow's append does, written by hand in the row's transaction: bump the counter, insert the event.
    createWithEvent: () =>
      floor.begin(async (tx) => {
        const [t] = await insert(tx)
        await tx.unsafe(
          `WITH c AS (INSERT INTO _onepipe_flows AS f (flow_name, last_offset) VALUES ($1, 1) ON CONFLICT (flow_name) DO UPDATE SET last_offset = f.last_offset + 1 RETURNING f.last_offset)
           INSERT INTO _onepipe_flow_events (id, flow_name, data, timestamp, offset_seq) SELECT $2, $1, $3::text::jsonb, (extract(epoch FROM now()) * 1000)::bigint, c.last_offset FROM c`,
          ['bench.hand', randomUUID(), JSON.stringify({ type: 'Order.created', id: t.id, data: t.data })],
          { prepare: true },
        )
      }),
    get: () => floor.unsafe(`SELECT ${COLUMNS} FROM _onepipe_things WHERE things_name = $1 AND type = $2 AND id = $3`, ['bench', 'Order', `o${1 + Math.floor(Math.random() * ROWS)}`], { prepare: true }),
    list: () => floor.unsafe(LIST_SQL, ['bench', 'Order', 'open', '100'], { prepare: true }),
    listByCustomer: () => floor.unsafe(BY_CUSTOMER_SQL, ['bench', 'Order', 'open', '100'], { prepare: true }),
  }

  // The same Things in the same order from both, or the comparison means nothing.
  for (const q of ['list', 'listByCustomer']) {
    const a = (await ours[q]()).map((t) => t.$id)
    const b = (await hand[q]()).map((r) => r.id)
    if (a.length !== 50 || a.join() !== b.join()) throw new Error(`the ${q} answers differ:\n${a.join()}\n${b.join()}`)
  }
  const plan = (await floor.unsafe(`EXPLAIN ${LIST_SQL}`, ['bench', 'Order', 'open', '100'])).map((r) => r['QUERY PLAN'])
  for (let i = 0; i < 20; i++) await Promise.all([ours.get(), hand.get(), ours.list(), hand.list()]) // warm both pools

  const runs = []
  // Reads first, on the seeded rows only; then the creates, which grow the table.
  for (const [name, o, h] of [
    ['get by id', ours.get, hand.get],
    ['list (status = open, amount > 100, -amount, limit 50)', ours.list, hand.list],
    ['the same list by -customer (a field of any type)', ours.listByCustomer, hand.listByCustomer],
    ['create', ours.create, hand.create],
    ['create, floor with its event', ours.create, hand.createWithEvent],
  ].filter(([name]) => ONLY === undefined || name.startsWith(ONLY))) {
    for (const loops of [1, LOOPS]) {
      const r = { name: `${name}, ${loops === 1 ? '1 client' : `${LOOPS} loops`}`, ours: [], peer: [] }
      for (let i = 0; i < ROUNDS; i++) {
        r.ours.push(await rate(o, loops))
        r.peer.push(await rate(h, loops))
      }
      runs.push(r)
      process.stdout.write(`  ${r.name}: ${r.ours.map((x) => x.toFixed(0)).join('/')} vs ${r.peer.map((x) => x.toFixed(0)).join('/')} ops/s\n`)
    }
  }
  printTable(
    `Things beside hand-written SQL on the same table (PostgreSQL, ${ROWS.toLocaleString('en-US')} orders, ${SECONDS} s × ${ROUNDS} rounds each; load ${loadBefore} → ${load()})`,
    'hand-written SQL',
    runs.map((r) => ({ name: r.name, ours: mean(r.ours), peer: mean(r.peer), unit: 'ops/s' })),
  )
  // Both sides' lists went through the declared index: its scans count them.
  await new Promise((r) => setTimeout(r, 1500))
  const [ix] = await admin.unsafe(`SELECT sum(idx_scan)::bigint AS scans FROM pg_stat_user_indexes WHERE schemaname = $1 AND indexrelname LIKE '_onepipe_things_ix_%'`, [schema])
  console.log(`\nscans of the declared index on status: ${ix?.scans ?? 0}; the hand-written list's plan:\n  ${plan.join('\n  ')}`)
} finally {
  await floor.end({ timeout: 5 })
  await db.close()
  await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await admin.end({ timeout: 5 })
}
