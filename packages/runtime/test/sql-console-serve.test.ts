// serve({ sqlConsole: true }): the read-only console for admins only (it reads
// every table, the account tables included); off unless asked for.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Auth, Flow } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { testDatabase } from '@onepipe/testing'

let t: Awaited<ReturnType<typeof testDatabase>>
let app: App
let off: App
const tokens: Record<string, string> = {}

beforeAll(async () => {
  t = await testDatabase()
  const auth = Auth.create('main').secret('sql-console-serve-secret-0123456789ab').db(t.db).build()
  const flow = Flow.create('sqlc-events').db(t.db).build()
  app = await serve({ db: t.db, auth, flows: [flow], sqlConsole: true, port: 0, hostname: '127.0.0.1', streams: false, handleSignals: false })
  off = await serve({ db: t.db, auth: Auth.create('main').secret('sql-console-serve-secret-0123456789ab').db(t.db).build(), flows: [Flow.create('sqlc-other').db(t.db).build()], port: 0, hostname: '127.0.0.1', streams: false, handleSignals: false })
  for (const role of ['admin', 'operator']) {
    await auth.users.create({ email: `${role}@sqlc.test`, password: 'correct horse battery', roles: [role] })
    tokens[role] = (await auth.login(`${role}@sqlc.test`, 'correct horse battery')).accessToken
  }
  await flow.append({ n: 1 })
}, 60_000)
afterAll(async () => {
  await off?.shutdown('test')
  await app?.shutdown('test')
  await t?.cleanup()
})

const sql = (a: App, role: string, query: string) =>
  a.request('/__onepipe/sql', { method: 'POST', headers: { authorization: `Bearer ${tokens[role]}`, 'content-type': 'application/json' }, body: JSON.stringify({ sql: query }) })

it('admins read; operators get 403; nobody writes; off by default', async () => {
  const ok = await sql(app, 'admin', "SELECT count(*)::int AS n FROM _onepipe_flow_events WHERE flow_name = 'sqlc-events'")
  expect(ok.status).toBe(200)
  expect(((await ok.json()) as { rows: unknown[][] }).rows).toEqual([[1]])
  const op = await sql(app, 'operator', 'SELECT 1')
  expect(op.status).toBe(403)
  expect(((await op.json()) as { error: { code: string } }).error.code).toBe('FORBIDDEN')
  const write = await sql(app, 'admin', 'DELETE FROM _onepipe_flow_events')
  expect(write.status).toBe(400)
  expect((await sql(off, 'admin', 'SELECT 1')).status).toBe(404)
})
