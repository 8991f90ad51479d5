import { isDeepStrictEqual } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Database } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { postgresUrl, testBackend, uniqueName, waitFor } from '@onepipe/testing'
import { SHOP_SQL_DIR } from '../src/app.js'
import { createShop } from '../src/shop.js'
import { adminHeaders, withAdminEnv } from './login.js'

describe('shop example: live state and input the tables cannot hold', () => {
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
  const count = async () => (await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM orders'))[0]?.n

  it('refuses text with NUL or control characters and amounts beyond the columns with a 400 naming the field, storing nothing', async () => {
    const before = await count()
    const cases: [unknown, string][] = [
      [{ customer: 'a\u0000b', items: [{ sku: 'x', qty: 1, priceCents: 1 }] }, 'customer'],
      [{ customer: 'ada', items: [{ sku: 'x\u0000', qty: 1, priceCents: 1 }] }, 'items.0.sku'],
      [{ customer: 'ada\n', items: [{ sku: 'x', qty: 1, priceCents: 1 }] }, 'customer'],
      [{ customer: 'ada', items: [{ sku: 'x', qty: 2 ** 40, priceCents: 2 ** 40 }] }, 'items.0.qty'],
      [{ customer: 'ada', items: [{ sku: 'x', qty: 1, priceCents: 1e15 }] }, 'items.0.priceCents'],
    ]
    for (const [body, path] of cases) {
      const res = await post(body)
      expect(res.status).toBe(400)
      const err = (await res.json()) as { error: { code: string; details: { issues: { path: string }[] } } }
      expect(err.error.code).toBe('VALIDATION_FAILED')
      expect(err.error.details.issues.map((i) => i.path)).toContain(path)
    }
    // The largest order the schema allows is stored exactly.
    const big = await post({ customer: 'max', items: Array.from({ length: 100 }, (_, i) => ({ sku: `s${i}`, qty: 1000, priceCents: 10_000_000 })) })
    expect(big.status).toBe(201)
    expect(((await big.json()) as { total_cents: number }).total_cents).toBe(100 * 1000 * 10_000_000)
    expect(await count()).toBe((before ?? 0) + 1)
  })

  it('the order-counts projection follows the events of every order', { timeout: 60_000 }, async () => {
    const o = (await (await post({ customer: 'pat', items: [{ sku: 'a', qty: 1, priceCents: 5 }] })).json()) as { id: number }
    const events = async () =>
      ((await (await fetch(`${app.url}/__onepipe/flows/order-events/events?limit=1000`)).json()) as { events: { data: { type: string; orderId: number } }[] }).events
    // Its last event is in the flow (the order's status turns 'shipped' one step before that event is appended).
    await waitFor(async () => (await events()).some((e) => e.data.type === 'order.shipped' && e.data.orderId === o.id), { timeoutMs: 30_000 })
    // Other orders may still be moving: compare with the fold of the flow as it stands each time.
    const fold = async () => {
      const counts = { placed: 0, paid: 0, shipped: 0 }
      for (const e of await events()) counts[e.data.type.slice('order.'.length) as keyof typeof counts]++
      return counts
    }
    const expected = await waitFor(async () => {
      const want = await fold()
      return isDeepStrictEqual(await (await fetch(`${app.url}/api/orders/stats`)).json(), want) && want
    }, { timeoutMs: 30_000 })
    expect(expected.shipped).toBeGreaterThanOrEqual(1)
  })

  it('closing the shop through its signal refuses new orders with 503 until it opens again', async () => {
    const put = (v: boolean) => fetch(`${app.url}/__onepipe/signals/shop-open`, { method: 'PUT', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify(v) })
    // Reading is public, changing needs an operator: without a token it is a 401 and nothing changes.
    expect((await fetch(`${app.url}/__onepipe/signals/shop-open`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: 'false' })).status).toBe(401)
    expect(await (await fetch(`${app.url}/__onepipe/signals/shop-open`)).json()).toMatchObject({ value: true })
    expect((await put(false)).status).toBe(200)
    const before = await count()
    const closed = await post({ customer: 'late', items: [{ sku: 'a', qty: 1, priceCents: 1 }] })
    expect(closed.status).toBe(503)
    expect(await closed.json()).toMatchObject({ error: { code: 'UNAVAILABLE' } })
    expect(await count()).toBe(before)
    expect((await put(true)).status).toBe(200)
    expect((await post({ customer: 'late', items: [{ sku: 'a', qty: 1, priceCents: 1 }] })).status).toBe(201)
  })

  it('OpenAPI documents what placing an order answers', async () => {
    const doc = (await (await fetch(`${app.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }
    expect(Object.keys(doc.paths['/api/orders']?.post?.responses ?? {})).toContain('201')
    expect(Object.keys(doc.paths['/api/orders']?.post?.responses ?? {})).not.toContain('200')
  })
})

function silent() {
  const l = { debug() {}, info() {}, warn() {}, error() {}, child: () => l }
  return l
}
