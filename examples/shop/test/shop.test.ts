import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Database } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { postgresUrl, testBackend, uniqueName, waitFor } from '@onepipe/testing'
import { SHOP_SQL_DIR } from '../src/app.js'
import { createShop } from '../src/shop.js'
import { adminHeaders, withAdminEnv } from './login.js'

describe('shop example: orders CRUD through serve()', () => {
  let app: App
  let auth: Record<string, string>
  let db: Database
  const schema = uniqueName('shop')

  beforeAll(async () => {
    const b = Database.create('shop').schema(schema).migrations(SHOP_SQL_DIR, 'shop')
    db = (testBackend() === 'embedded' ? b.pglite('memory://') : b.postgres(postgresUrl())).build()
    const unset = withAdminEnv()
    try {
      app = await serve({ port: 0, hostname: '127.0.0.1', ...createShop(db), handleSignals: false, logger: silent() })
    } finally {
      unset()
    }
    auth = await adminHeaders(app)
  })
  afterAll(async () => {
    await app.shutdown()
    if (db.kind === 'postgres') {
      const admin = Database.create('admin').postgres(postgresUrl()).autoMigrate(false).build()
      await admin.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await admin.close()
    }
  })

  const post = (body: unknown) => fetch(`${app.url}/api/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  it('creates, reads, lists, updates and deletes an order over HTTP', async () => {
    const created = await post({ customer: 'ada', items: [{ sku: 'tea', qty: 2, priceCents: 450 }] })
    expect(created.status).toBe(201)
    const order = (await created.json()) as { id: number; total_cents: number; status: string }
    expect(order).toMatchObject({ total_cents: 900, status: 'pending' })
    expect(created.headers.get('location')).toBe(`/api/orders/${order.id}`)

    expect(await (await fetch(`${app.url}/api/orders/${order.id}`)).json()).toMatchObject({ id: order.id, customer: 'ada' })
    const list = (await (await fetch(`${app.url}/api/orders?limit=100`)).json()) as { orders: { id: number }[] }
    expect(list.orders.map((o) => o.id)).toContain(order.id)

    // (Its fulfilment runs meanwhile; cancelling is allowed from any state but cancelled.)
    const cancelled = await fetch(`${app.url}/api/orders/${order.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 'cancelled' }) })
    expect(await cancelled.json()).toMatchObject({ status: 'cancelled' })

    expect((await fetch(`${app.url}/api/orders/${order.id}`, { method: 'DELETE' })).status).toBe(204)
    expect((await fetch(`${app.url}/api/orders/${order.id}`)).status).toBe(404)
  })

  it('placing an order starts its fulfilment: charged once, shipped, every step on the order-events flow', async () => {
    const o = (await (await post({ customer: 'dee', items: [{ sku: 'b', qty: 3, priceCents: 100 }] })).json()) as { id: number; fulfilment: string }
    expect(o.fulfilment).toBe(`/__onepipe/workflows/runs/order-${o.id}`)
    const run = await waitFor(
      async () => {
        const r = (await (await fetch(`${app.url}${o.fulfilment}`)).json()) as { run: { status: string; output: unknown } }
        return r.run.status !== 'running' && r.run.status !== 'pending' && r
      },
      { what: 'the fulfilment run to finish', intervalMs: 100 },
    )
    expect(run.run).toMatchObject({ status: 'completed', output: { outcome: 'shipped', chargeId: `ch_${o.id}_300` } })
    expect(await (await fetch(`${app.url}/api/orders/${o.id}`)).json()).toMatchObject({ status: 'shipped' })
    const flow = (await (await fetch(`${app.url}/__onepipe/flows/order-events/events`)).json()) as { events: { data: { type: string; orderId: number } }[] }
    expect(flow.events.filter((e) => e.data.orderId === o.id).map((e) => e.data.type)).toEqual(['order.placed', 'order.paid', 'order.shipped'])
    // The payment channel ran once for this order's key.
    const calls = (await (await fetch(`${app.url}/rpc/charge-payment`, { headers: auth })).json()) as { calls: { idempotencyKey: string }[] }
    expect(calls.calls.filter((c) => c.idempotencyKey === `order-${o.id}`)).toHaveLength(1)
  })

  it('rejects bad orders with 400 and stores nothing', async () => {
    const before = await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM orders')
    const res = await post({ customer: 'bob', items: [{ sku: 'x', qty: -1, priceCents: 1 }] })
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error: { code: 'VALIDATION_FAILED', details: { issues: [{ path: 'items.0.qty' }] } } })
    expect((await fetch(`${app.url}/api/orders/abc`)).status).toBe(400)
    expect(await db.query('SELECT count(*)::int8 AS n FROM orders')).toEqual(before)
  })

  it('a cancelled order cannot change status (409)', async () => {
    const o = (await (await post({ customer: 'cy', items: [{ sku: 'a', qty: 1, priceCents: 1 }] })).json()) as { id: number }
    const patch = (status: string) => fetch(`${app.url}/api/orders/${o.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status }) })
    expect((await patch('cancelled')).status).toBe(200)
    const res = await patch('paid')
    expect(res.status).toBe(409)
    expect(await res.json()).toMatchObject({ error: { code: 'CONFLICT' } })
  })
})

function silent() {
  const l = { debug() {}, info() {}, warn() {}, error() {}, child: () => l }
  return l
}
