import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { APIError, Database, Lifecycle, REST, type Flow, type Projection, type Signal, type Workflow } from '@onepipe/sdk'
import type { OrderEvent } from './fulfilment.js'
import type { OrderCounts } from './live.js'
import { z } from 'zod'

/** The shop's own numbered migrations (its tables), applied after OnePipe's. */
export const SHOP_SQL_DIR = fileURLToPath(new URL('../sql', import.meta.url))

/**
 * The shop's database: PostgreSQL when DATABASE_URL is set, else embedded
 * PGlite in `.onepipe/shop/db` (or `ONEPIPE_DATA_DIR/db`): a folder of its
 * own, so the demo never meets the tables of an app you run beside it.
 */
export function createDb(): Database {
  const b = Database.create('shop').migrations(SHOP_SQL_DIR, 'shop')
  if (!process.env.DATABASE_URL && !process.env.ONEPIPE_DATA_DIR) b.pglite(resolve('.onepipe', 'shop', 'db'))
  return b.build()
}

// The schemas refuse what the tables cannot hold, so bad input is a 400 that
// names the field rather than a database error: text without control
// characters (PostgreSQL text holds no NUL), and bounds that keep the largest
// order (100 items × 1,000 × 10,000,000 cents) far inside bigint and exact in a
// JavaScript number.
const Text = (max: number) => z.string().min(1).max(max).regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters')
const Item = z.object({ sku: Text(64), qty: z.number().int().positive().max(1000), priceCents: z.number().int().nonnegative().max(10_000_000) })
const NewOrder = z.object({ customer: Text(200), items: z.array(Item).min(1).max(100) })
const StatusChange = z.object({ status: z.enum(['pending', 'paid', 'shipped', 'cancelled']) })
const ListQuery = z.object({
  status: z.enum(['pending', 'paid', 'shipped', 'cancelled']).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  after: z.coerce.number().int().nonnegative().default(0),
})
const IdParams = z.object({ id: z.coerce.number().int().positive() })

interface OrderRow {
  id: number
  customer: string
  items: z.infer<typeof Item>[]
  total_cents: number
  status: string
  created_at: Date
  updated_at: Date
}

/** What placing an order sets in motion and what the API reads (absent in tests of the API alone). */
export interface OrderHooks {
  events?: Flow<OrderEvent>
  fulfil?: Workflow<{ orderId: number }, unknown>
  counts?: Projection<OrderCounts, OrderEvent>
  open?: Signal<boolean>
}

/** Orders CRUD: create, list (keyset pagination), get, change status, delete. */
export function createOrdersApi(db: Database, hooks: OrderHooks = {}) {
  return REST.create('orders')
    .basePath('/api/orders')
    .db(db)
    .openapi({ title: 'Shop', version: '1.0.0' })
    .post('/', { body: NewOrder, status: 201, summary: 'Place an order' }, async (ctx) => {
      if (hooks.open && !(await hooks.open.get())) throw new APIError('UNAVAILABLE', 'The shop is closed for now; place the order again later')
      const input = await ctx.body()
      const total = input.items.reduce((s, i) => s + i.qty * i.priceCents, 0)
      const [row] = await ctx.db.query<OrderRow>('INSERT INTO orders (customer, items, total_cents) VALUES ($1, $2::jsonb, $3) RETURNING *', [input.customer, input.items, total])
      if (!row) throw new APIError('INTERNAL', 'The order was not stored')
      await hooks.events?.append({ type: 'order.placed', orderId: row.id, at: new Date().toISOString() })
      // Idempotent by workflow id: a retried POST can never fulfil one order twice.
      const run = await hooks.fulfil?.start({ orderId: row.id }, { workflowId: `order-${row.id}` })
      return ctx.created({ ...row, fulfilment: run ? `/__onepipe/workflows/runs/${run.workflowId}` : null }, `/api/orders/${row.id}`)
    })
    .get('/', { query: ListQuery, summary: 'List orders' }, async (ctx) => {
      const { status, limit, after } = ctx.query
      const rows = await ctx.db.query<OrderRow>('SELECT * FROM orders WHERE id > $1 AND ($2::text IS NULL OR status = $2) ORDER BY id LIMIT $3', [after, status ?? null, limit])
      return { orders: rows, next: rows.length === limit ? rows[rows.length - 1]?.id : null }
    })
    .get('/stats', { summary: 'Orders placed, paid and shipped' }, async () => (await hooks.counts?.get()) ?? { placed: 0, paid: 0, shipped: 0 })
    .get('/:id', { params: IdParams, summary: 'Get one order' }, async (ctx) => {
      const [row] = await ctx.db.query<OrderRow>('SELECT * FROM orders WHERE id = $1', [ctx.params.id])
      return row ?? ctx.notFound(`No order ${ctx.params.id}`)
    })
    .patch('/:id', { params: IdParams, body: StatusChange, summary: 'Change an order status' }, async (ctx) => {
      const { status } = await ctx.body()
      const [row] = await ctx.db.query<OrderRow>("UPDATE orders SET status = $1, updated_at = now() WHERE id = $2 AND status <> 'cancelled' RETURNING *", [status, ctx.params.id])
      if (row) return row
      const [exists] = await ctx.db.query('SELECT 1 FROM orders WHERE id = $1', [ctx.params.id])
      if (!exists) throw new APIError('NOT_FOUND', `No order ${ctx.params.id}`)
      throw new APIError('CONFLICT', `Order ${ctx.params.id} is cancelled and cannot change status`)
    })
    .delete('/:id', { params: IdParams, summary: 'Delete an order' }, async (ctx) => {
      const n = await ctx.db.execute('DELETE FROM orders WHERE id = $1', [ctx.params.id])
      return n === 1 ? ctx.noContent() : ctx.notFound(`No order ${ctx.params.id}`)
    })
    .build()
}

/** Readiness checks and shutdown hooks of the shop. */
export function createLifecycle(db: Database) {
  // serve() already checks the database in /ready; the shop closes it last at shutdown.
  return Lifecycle.create()
    .onShutdown('db', () => db.close(), 90)
    .timeout('20s')
    .build()
}
