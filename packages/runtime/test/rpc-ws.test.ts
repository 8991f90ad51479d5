// WebSocket RPC (GET /rpc/ws): calls over one connection, `subscribe` calling
// the client back for each matching event, authenticated through serve()'s
// guard, scoped to the tenant the connection names, bounded, and closed with
// 1001 at shutdown.
import { newWebSocketRpcSession } from 'capnweb'
import { afterAll, beforeAll, expect, it } from 'vitest'
import WebSocket from 'ws'
import { Auth, RPC, Semantic, Tenants, Things } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { testDatabase, waitFor } from '@onepipe/testing'

// Node 20 has no global WebSocket; Cap'n Web's client reads its constants from it.
globalThis.WebSocket ??= WebSocket as unknown as typeof globalThis.WebSocket

let t: Awaited<ReturnType<typeof testDatabase>>
let app: App
let token: string
let outsiderToken: string

interface Api {
  double(n: number): number
  whereAmI(): string
  subscribe(patterns: string | string[], cb: (e: { offset: number; type: string; id: string; data: Record<string, unknown> }) => void, o?: { offset?: number }): { unsubscribe(): void }
}

const things = Things.create('ws').noun('Order').noun('Customer').build()
const $ = Semantic.create('ws').source(things).build()
const tenants = Tenants.create('ws').fromHeader('x-tenant').scope(things, $).access((user, tenant) => user?.email === 'ws@example.test' || tenant === 'charlie').build()
const api = RPC.create('ws-rpc')
  .tenants(tenants)
  .events(things)
  .expose({
    double: async (_ctx, n: number) => n * 2,
    whereAmI: async (ctx) => ctx.tenant?.name ?? 'nowhere',
  })
  .build()

beforeAll(async () => {
  t = await testDatabase()
  const auth = Auth.create('main').secret('rpc-ws-test-secret-0123456789-abcdefghij').db(t.db).build()
  app = await serve({ db: t.db, auth, components: [tenants, api], port: 0, hostname: '127.0.0.1', streams: false, handleSignals: false })
  await auth.users.create({ email: 'ws@example.test', password: 'correct horse battery', roles: ['viewer'] })
  await auth.users.create({ email: 'other@example.test', password: 'correct horse battery', roles: ['viewer'] })
  token = (await auth.login('ws@example.test', 'correct horse battery')).accessToken
  outsiderToken = (await auth.login('other@example.test', 'correct horse battery')).accessToken
  await tenants.get('alpha')
  await tenants.get('bravo')
}, 90_000)
afterAll(async () => {
  await app?.shutdown('test')
  await t?.cleanup()
})

const wsUrl = () => app.url.replace(/^http/, 'ws') + '/rpc/ws'
function connect(tenant: string, headers: Record<string, string> = { authorization: `Bearer ${token}` }): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(), { headers: { 'x-tenant': tenant, ...headers } })
    ws.once('open', () => resolve(ws))
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })))
    ws.once('error', reject)
  })
}
const session = (ws: WebSocket) => newWebSocketRpcSession<Api>(ws as unknown as globalThis.WebSocket)

it('calls and subscribes over one connection, each tenant seeing only its own events', async () => {
  const [a, b] = [await connect('alpha'), await connect('bravo')]
  const sa = session(a)
  const sb = session(b)
  expect(await sa.double(21)).toBe(42)
  expect(await sa.whereAmI()).toBe('alpha')
  expect(await sb.whereAmI()).toBe('bravo')

  const seenA: string[] = []
  const seenB: string[] = []
  const anyA: string[] = []
  const subA = await sa.subscribe(['Order.created'], (e) => void seenA.push(`${e.type}:${e.id}:${e.offset}`))
  await sa.subscribe('*.*', (e) => void anyA.push(e.type))
  await sb.subscribe(['Order.*'], (e) => void seenB.push(`${e.type}:${e.id}`))

  const alpha = (await tenants.get('alpha')).use(things)
  const bravo = (await tenants.get('bravo')).use(things)
  for (let i = 0; i < 5; i++) await alpha.noun('Order').create({ n: i }, { id: `a${i}` })
  await alpha.noun('Customer').create({ name: 'Ada' }, { id: 'c1' })
  await bravo.noun('Order').create({ n: 1 }, { id: 'b1' })
  await bravo.noun('Order').update('b1', { n: 2 })

  await waitFor(() => seenA.length === 5 && anyA.length === 6 && seenB.length === 2, { timeoutMs: 60_000, what: 'every subscriber called back' })
  expect(seenA.map((s) => s.split(':').slice(0, 2).join(':'))).toEqual(['Order.created:a0', 'Order.created:a1', 'Order.created:a2', 'Order.created:a3', 'Order.created:a4'])
  expect(anyA).toEqual(['Order.created', 'Order.created', 'Order.created', 'Order.created', 'Order.created', 'Customer.created'])
  expect(seenB).toEqual(['Order.created:b1', 'Order.updated:b1'])

  // Resuming after an offset replays what came after it, then goes on live.
  const resumed: string[] = []
  const third = Number(seenA[2]!.split(':')[2])
  await sa.subscribe('Order.created', (e) => void resumed.push(e.id), { offset: third })
  await waitFor(() => resumed.length === 2, { timeoutMs: 60_000, what: 'the replay after the offset' })
  expect(resumed).toEqual(['a3', 'a4'])

  await subA.unsubscribe()
  await alpha.noun('Order').create({ n: 9 }, { id: 'a9' })
  await waitFor(() => resumed.length === 3, { timeoutMs: 60_000, what: 'the still-subscribed handler' })
  expect(seenA).toHaveLength(5)

  // Bad arguments are errors the caller gets, and the session goes on.
  await expect(sa.subscribe('Order', () => undefined)).rejects.toThrow(/Noun\.verb/)
  await expect(sa.subscribe(['Order.created'], 'not a function' as never)).rejects.toThrow(/function/)
  await expect(sa.subscribe('Order.created', () => undefined, { offset: -1 })).rejects.toThrow(/offset/)
  expect(await sa.double(2)).toBe(4)
  a.close()
  b.close()
})

it('refuses anonymous, foreign-origin and out-of-tenant connections, names outside the allow-list, and oversized messages', async () => {
  await expect(connect('alpha', {})).rejects.toMatchObject({ status: 401 })
  await expect(connect('alpha', { authorization: `Bearer ${token}`, origin: 'https://evil.example' })).rejects.toMatchObject({ status: 403 })
  await expect(connect('alpha', { authorization: `Bearer ${outsiderToken}` })).rejects.toMatchObject({ status: 403 })
  await expect(connect('a..b')).rejects.toMatchObject({ status: 400 })
  await expect(connect('never-made')).rejects.toMatchObject({ status: 404 })
  // Same-origin pages may connect.
  const same = await connect('alpha', { authorization: `Bearer ${token}`, origin: app.url })
  same.close()
  // A plain GET is told to upgrade; an HTTP batch cannot subscribe.
  const plain = await fetch(wsUrl().replace(/^ws/, 'http'), { headers: { authorization: `Bearer ${token}`, 'x-tenant': 'alpha' } })
  expect(plain.status).toBe(426)
  const batch = await fetch(`${app.url}/rpc/pipeline`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'x-tenant': 'alpha' }, body: '["push",["pipeline",0,["subscribe"],["Order.created"]]]\n["pull",1]' })
  expect(await batch.text()).toContain('WebSocket')

  // Raw protocol messages, as an attacker would send them: each name off the allow-list is rejected.
  const ws = await connect('alpha')
  const replies: string[] = []
  ws.on('message', (m: Buffer) => void replies.push(m.toString('utf8')))
  const names = ['constructor', '__proto__', 'toString', 'deleteEverything']
  names.forEach((name, i) => {
    ws.send(JSON.stringify(['push', ['pipeline', 0, [name], []]]))
    ws.send(JSON.stringify(['pull', i + 1]))
  })
  ws.send(JSON.stringify(['push', ['pipeline', 0, ['double'], [4]]]))
  ws.send(JSON.stringify(['pull', names.length + 1]))
  await waitFor(() => replies.length >= names.length + 1, { timeoutMs: 30_000, what: 'an answer to every call' })
  expect(replies.filter((r) => r.startsWith('["reject"'))).toHaveLength(names.length)
  expect(replies).toContain(`["resolve",${names.length + 1},8]`)
  ws.close()
  // A message that is not Cap'n Web's ends the session with 1008 (the client's fault), never 1011.
  const garbled = await connect('alpha')
  const garbledClosed = new Promise<number>((r) => garbled.once('close', (code) => r(code)))
  garbled.send('hello')
  expect(await garbledClosed).toBe(1008)
  // A message past 1 MiB closes the connection with 1009 (too big).
  const big = await connect('alpha')
  const closed = new Promise<number>((r) => big.once('close', (code) => r(code)))
  big.send('x'.repeat(1024 * 1024 + 10))
  expect(await closed).toBe(1009)
})

it('closes every session with 1001 when the app shuts down, within the drain', async () => {
  const local = await testDatabase()
  const auth = Auth.create('main').secret('rpc-ws-test-secret-0123456789-abcdefghij').db(local.db).build()
  const things2 = Things.create('ws2').noun('Order').build()
  const api2 = RPC.create('ws-rpc-2').events(things2).expose({ ping: async () => 'pong' }).build()
  const app2 = await serve({ db: local.db, auth, components: [things2, api2], port: 0, hostname: '127.0.0.1', streams: false, handleSignals: false })
  try {
    await auth.users.create({ email: 'ws2@example.test', password: 'correct horse battery', roles: ['viewer'] })
    const tk = (await auth.login('ws2@example.test', 'correct horse battery')).accessToken
    const ws = new WebSocket(app2.url.replace(/^http/, 'ws') + '/rpc/ws', { headers: { authorization: `Bearer ${tk}` } })
    await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
    const s = session(ws)
    await s.subscribe('Order.created', () => undefined)
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)))
    const started = Date.now()
    const report = await app2.shutdown('test')
    expect(await closed).toBe(1001)
    expect(report.cut).toEqual([])
    expect(Date.now() - started).toBeLessThan(30_000)
  } finally {
    await app2.shutdown('test')
    await local.cleanup()
  }
})
