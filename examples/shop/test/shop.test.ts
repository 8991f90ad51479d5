import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Database } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { postgresUrl, testBackend, uniqueName } from '@onepipe/testing'
import { SHOP_SQL_DIR, createLifecycle, createOrdersApi } from '../src/app.js'

describe('shop example: orders CRUD through serve()', () => {
  let app: App
  let db: Database
  const schema = uniqueName('shop')

  beforeAll(async () => {
    const b = Database.create('shop').schema(schema).migrations(SHOP_SQL_DIR, 'shop')
    db = (testBackend() === 'embedded' ? b.pglite('memory://') : b.postgres(postgresUrl())).build()
    app = await serve({ port: 0, hostname: '127.0.0.1', db, rest: [createOrdersApi(db)], lifecycle: createLifecycle(db), handleSignals: false, logger: silent() })
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
    const list = (await (await fetch(`${app.url}/api/orders?status=pending`)).json()) as { orders: { id: number }[] }
    expect(list.orders.map((o) => o.id)).toContain(order.id)

    const paid = await fetch(`${app.url}/api/orders/${order.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 'paid' }) })
    expect(await paid.json()).toMatchObject({ status: 'paid' })

    expect((await fetch(`${app.url}/api/orders/${order.id}`, { method: 'DELETE' })).status).toBe(204)
    expect((await fetch(`${app.url}/api/orders/${order.id}`)).status).toBe(404)
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
