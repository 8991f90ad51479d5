// Tenants: each tenant's Things, events, handlers and tables in a schema of
// its own, chosen per transaction. Three tenants write at once and each one's
// list, events, handlers and SQL console see only its own rows; names that are
// not tenant names, other tenants' schemas and server-state reads are refused;
// no pooled connection keeps a tenant's search path.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Hono } from 'hono'
import { RPC, Semantic, silentLogger, Tenants, tenantSchema, Things, type AuthUser, type Database, type RuntimeContext } from '@onepipe/sdk'
import { testDatabase, waitFor } from '@onepipe/testing'

let db: Database
let schema: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({ db, schema, cleanup } = await testDatabase())
})
afterAll(async () => {
  await cleanup()
})

const rt = (): RuntimeContext => ({ instanceId: 'tenants-test', db, cache: undefined as never, logger: silentLogger, signal: new AbortController().signal })
const NAMES = ['alpha', 'bravo', 'charlie-2'] as const

function build() {
  const things = Things.create('main').noun('Order', undefined, { indexes: ['total'] }).build()
  const $ = Semantic.create('shop').source(things).build()
  $.on('Order.created', async (e, $) => {
    // Unqualified: the tenant's own `effects`, through the run's transaction in the tenant's schema.
    await $.do(async ({ tx }) => tx!.execute('INSERT INTO effects (order_id) VALUES ($1)', [e.id]), { stepId: 'effect', transaction: true })
  })
  const tenants = Tenants.create('shop').fromHeader('x-tenant').fromHost('api.example.com').scope(things, $).sqlConsole().build()
  return { things, $, tenants }
}

it('refuses names that are not tenant names and maps each name to its own schema', async () => {
  const { tenants } = build()
  for (const bad of ['..', 'a..b', 'acme"; DROP SCHEMA x --', "o'brien", 'ACME', 'a_b', '-a', 'a-', '', 'x'.repeat(31), '../bravo', `${schema}__t_alpha`]) {
    await expect(tenants.get(bad)).rejects.toMatchObject({ code: 'TENANT_INVALID', status: 400 })
  }
  expect(tenantSchema('base', 'acme-co')).toBe('base__t_acme_co')
  expect(tenantSchema(undefined, 'acme')).toBe('t_acme')
  expect(() => tenantSchema('x'.repeat(40), 'y'.repeat(30))).toThrow(expect.objectContaining({ code: 'TENANT_SCHEMA_TOO_LONG' }) as Error)
})

it('keeps three tenants writing at once apart: lists, counts, events, handlers and the SQL console', async () => {
  const { things, tenants } = build()
  await tenants.attach(rt())
  try {
    const ts = await Promise.all(NAMES.map((n) => tenants.get(n)))
    for (const t of ts) await t.db.execute('CREATE TABLE effects (order_id text NOT NULL)')
    expect((await tenants.list()).map((t) => t.name).sort()).toEqual([...NAMES].sort())

    // 150 orders per tenant, all three tenants at once, each order carrying its tenant's name.
    await Promise.all(
      ts.map(async (t, i) => {
        const orders = t.use(things).noun('Order')
        await Promise.all(Array.from({ length: 150 }, (_, k) => orders.create({ tenant: t.name, total: k + i * 1000 }, { id: `${t.name}-${k}` })))
      }),
    )
    for (const [i, t] of ts.entries()) {
      const orders = t.use(things).noun('Order')
      expect(await orders.count()).toBe(150)
      const page = await orders.list({ where: { total: { $gte: 0 } }, limit: 1000 })
      expect(page).toHaveLength(150)
      expect(new Set(page.map((o) => o.tenant))).toEqual(new Set([t.name]))
      expect(await orders.count({ total: { $lt: i * 1000 } })).toBe(0)
      const events = await t.use(things).events.read({ offset: 0, limit: 1000 })
      expect(events).toHaveLength(150)
      expect(events.every((e) => e.data.id?.startsWith(`${t.name}-`))).toBe(true)
    }

    // Each tenant's handler ran once per order of that tenant, in that tenant's table.
    await waitFor(
      async () => {
        for (const t of ts) {
          const [r] = await t.db.query<{ n: number; wrong: number }>(`SELECT count(*)::int AS n, count(*) FILTER (WHERE order_id NOT LIKE $1)::int AS wrong FROM effects`, [`${t.name}-%`])
          if (r?.n !== 150 || r.wrong !== 0) return false
        }
        return true
      },
      { timeoutMs: 120_000, what: 'every tenant handled its own 150 orders' },
    )
    for (const t of ts) {
      const [dup] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM (SELECT order_id FROM effects GROUP BY order_id HAVING count(*) > 1) d')
      expect(dup?.n).toBe(0)
    }

    // The SQL console of a tenant reads its own schema only.
    const app = new Hono()
    app.use('*', async (c, next) => {
      const u = c.req.header('x-test-user')
      c.set('user' as never, (u ? JSON.parse(u) : undefined) as never)
      await next()
    })
    tenants.routes(app, rt())
    const sql = (tenant: string, q: string, user: AuthUser = { id: 'op', roles: ['operator'], permissions: ['onepipe:write', 'onepipe:read'], tenants: [...NAMES] }) =>
      app.request('/__onepipe/tenant/sql', { method: 'POST', headers: { 'content-type': 'application/json', 'x-tenant': tenant, 'x-test-user': JSON.stringify(user) }, body: JSON.stringify({ sql: q }) })
    for (const t of ts) {
      const res = await sql(t.name, "SELECT count(*)::int AS n, count(*) FILTER (WHERE data->>'tenant' <> current_schema())::int AS other FROM _onepipe_things")
      expect(res.status).toBe(200)
      const body = (await res.json()) as { rows: number[][] }
      expect(body.rows[0]?.[0]).toBe(150)
    }
    const other = ts[1]!.schema
    const refused = [
      `SELECT * FROM "${other}"._onepipe_things`,
      `SELECT * FROM ${schema}._onepipe_tenants`,
      'SELECT * FROM _onepipe_things t JOIN pg_stat_activity a ON true',
      'SELECT * FROM pg_catalog.pg_class',
      'SELECT * FROM information_schema.tables',
      `SELECT set_config('search_path', '${other}', false)`,
      `SELECT table_to_xml('"${other}"._onepipe_things'::regclass, true, false, '')`,
      `SELECT query_to_xml('select * from "${other}"._onepipe_things', true, false, '')`,
      'SELECT pg_stat_get_activity(NULL)',
      `SELECT "${other}".anything()`,
      `SELECT '"${other}"._onepipe_things'::regclass::oid`,
      `SELECT to_regclass('"${other}"._onepipe_things')`,
      `SELECT currval('"${other}".some_seq')`,
      "SELECT current_setting('data_directory')",
    ]
    for (const q of refused) {
      const res = await sql(NAMES[0], q)
      expect(res.status, q).toBe(400)
      expect(((await res.json()) as { error: { code: string } }).error.code, q).toBe('VALIDATION_FAILED')
    }
    // A string literal naming another schema is only text.
    const lit = await sql(NAMES[0], `SELECT '${other}._onepipe_things; DROP TABLE x' AS s`)
    expect(lit.status).toBe(200)

    // Who may not act in a tenant is refused before learning whether it exists; bad names are 400; none is 400.
    const outsider: AuthUser = { id: 'u2', roles: ['operator'], permissions: ['onepipe:write', 'onepipe:read'], tenant: 'alpha' }
    expect((await sql('bravo', 'SELECT 1', outsider)).status).toBe(403)
    expect((await sql('nowhere', 'SELECT 1', outsider)).status).toBe(403)
    expect((await sql('nowhere', 'SELECT 1', { id: 'a', roles: ['admin'], permissions: ['onepipe:write'] })).status).toBe(404)
    expect((await sql('a..b', 'SELECT 1')).status).toBe(400)
    const none = await app.request('/__onepipe/tenant/sql', { method: 'POST', headers: { 'content-type': 'application/json', 'x-test-user': JSON.stringify(outsider) }, body: JSON.stringify({ sql: 'SELECT 1' }) })
    expect(none.status).toBe(400)
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('TENANT_REQUIRED')
    // The host's first label under the domain names the tenant too.
    const byHost = await app.request('http://alpha.api.example.com/__onepipe/tenant/sql', { method: 'POST', headers: { 'content-type': 'application/json', 'x-test-user': JSON.stringify(outsider) }, body: JSON.stringify({ sql: 'SELECT count(*)::int FROM _onepipe_things' }) })
    expect(byHost.status).toBe(200)
    const deep = await app.request('http://x.alpha.api.example.com/__onepipe/tenant/sql', { method: 'POST', headers: { 'content-type': 'application/json', 'x-test-user': JSON.stringify(outsider) }, body: JSON.stringify({ sql: 'SELECT 1' }) })
    expect(deep.status).toBe(400)

    // RPC calls run in the tenant their request names.
    const api = RPC.create('tenants-rpc').tenants(tenants).expose({ count: async (ctx) => ctx.tenant!.use(things).noun('Order').count() }).build()
    const rpcApp = new Hono()
    rpcApp.use('*', async (c, next) => {
      c.set('user' as never, outsider as never)
      await next()
    })
    api.routes(rpcApp, rt())
    const call = (tenant: string) => rpcApp.request('/rpc/pipeline', { method: 'POST', headers: { 'x-tenant': tenant }, body: '["push",["pipeline",0,["count"],[]]]\n["pull",1]' })
    const ok = await call('alpha')
    expect(ok.status).toBe(200)
    expect(await ok.text()).toContain('150')
    expect((await call('bravo')).status).toBe(403)
  } finally {
    await tenants.detach()
  }
  // No pooled connection kept a tenant's search path.
  const paths = await Promise.all(Array.from({ length: 30 }, () => db.query<{ p: string }>("SELECT current_setting('search_path') AS p")))
  expect(new Set(paths.map((r) => r[0]?.p?.replace(/"/g, '')))).toEqual(new Set([schema]))
})

it('makes a tenant once when instances race to make it, and another instance starts its handlers', async () => {
  const a = build()
  const b = build()
  await a.tenants.attach(rt())
  await b.tenants.attach({ ...rt(), instanceId: 'tenants-test-b' })
  try {
    const [t1, t2] = await Promise.all([a.tenants.get('delta'), b.tenants.get('delta')])
    expect(t1.schema).toBe(t2.schema)
    const [n] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM _onepipe_tenants WHERE name = $1', ['delta'])
    expect(n?.n).toBe(1)
    // A tenant made elsewhere is found by name.
    expect((await b.tenants.find('alpha'))?.schema).toBe(tenantSchema(schema, 'alpha'))
    expect(await b.tenants.find('never-made')).toBeUndefined()
  } finally {
    await a.tenants.detach()
    await b.tenants.detach()
  }
})
