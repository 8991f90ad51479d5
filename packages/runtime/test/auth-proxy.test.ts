// Client addresses and callers behind a trusted proxy, over a real socket (the
// address is read from it): login throttling reads the proxies serve() was
// given, and server-wide limits by user count the caller, not the address.
// Runs on the backend of the run: PostgreSQL + Redis, or PGlite + memory with
// ONEPIPE_TEST_BACKEND=embedded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Auth, RateLimit, REST, type Cache, type Component, type Database } from '@onepipe/sdk'
import { testCache, testDatabase, uniqueName } from '@onepipe/testing'
import type { Hono } from 'hono'
import { serve, type App, type ServeOptions } from '../src/serve/index.js'

const SECRET = 'a-test-secret-of-more-than-thirty-two-bytes-0123456789'
const PASSWORD = 'correct horse battery staple'

const silent = () => {
  const l = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => l }
  return l
}

let db: Database
let cache: Cache
const cleanups: (() => Promise<void>)[] = []
const apps: App[] = []
const savedProxies = process.env.ONEPIPE_TRUSTED_PROXIES

beforeAll(async () => {
  // The proxies must come from serve() alone.
  delete process.env.ONEPIPE_TRUSTED_PROXIES
  const [d, c] = await Promise.all([testDatabase(), testCache()])
  ;[db, cache] = [d.db, c.cache]
  cleanups.push(c.cleanup, d.cleanup)
})

afterAll(async () => {
  for (const a of apps) await a.shutdown('test')
  for (const c of cleanups) await c()
  if (savedProxies !== undefined) process.env.ONEPIPE_TRUSTED_PROXIES = savedProxies
})

/** serve() behind a proxy on loopback, over a socket: its base URL. */
async function start(o: Partial<ServeOptions>): Promise<string> {
  const app = await serve({ port: 0, hostname: '127.0.0.1', db, cache, trustProxy: ['loopback'], handleSignals: false, logger: silent(), ...o })
  apps.push(app)
  return `http://127.0.0.1:${app.port}`
}

const login = (url: string, email: string, password: string, from: string) =>
  fetch(`${url}/__onepipe/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': from }, body: JSON.stringify({ email, password }) })
const stranger = () => `${uniqueName('nobody')}@example.test`

describe('login throttling behind serve({ trustProxy })', () => {
  it("one address's failed logins do not lock out a client behind the same proxy", async () => {
    const auth = Auth.create(uniqueName('proxy')).secret(SECRET).build()
    const url = await start({ auth })
    const email = `${uniqueName('ada')}@example.test`
    await auth.users.create({ email, password: PASSWORD, roles: [] })
    // Each wrong login names another account, so only the address's count can stop the right one.
    for (let i = 0; i < 10; i++) {
      const r = await login(url, stranger(), 'wrong password', '203.0.113.66')
      expect(r.status).toBe(401)
      await r.arrayBuffer()
    }
    const attacker = await login(url, stranger(), 'wrong password', '203.0.113.66')
    expect(attacker.status).toBe(429)
    expect(((await attacker.json()) as { error: { code: string } }).error.code).toBe('TOO_MANY_ATTEMPTS')

    const victim = await login(url, email, PASSWORD, '198.51.100.7')
    expect(victim.status).toBe(200)
    expect(await victim.json()).toMatchObject({ accessToken: expect.any(String) as string })
  })

  it("an Auth that reads addresses itself (.clientAddress()) keeps its own, whatever serve()'s proxies", async () => {
    const auth = Auth.create(uniqueName('own'))
      .secret(SECRET)
      .clientAddress(() => 'one-for-all')
      .build()
    const url = await start({ auth })
    for (let i = 0; i < 10; i++) await (await login(url, stranger(), 'wrong password', `203.0.113.${i + 1}`)).arrayBuffer()
    const r = await login(url, stranger(), 'wrong password', '198.51.100.7')
    expect(r.status).toBe(429)
    await r.arrayBuffer()
  })
})

describe('serve({ rateLimit }) by user', () => {
  let url: string
  const tokens = new Map<string, string>()

  beforeAll(async () => {
    const auth = Auth.create(uniqueName('peruser')).secret(SECRET).build()
    const perUser = RateLimit.create(uniqueName('per-user')).points(3).per('1m').by('user').build()
    const api = REST.create('orders')
      .auth(auth)
      .get('/api/orders', (ctx) => ({ user: ctx.user?.id }))
      .build()
    // A component with a route under /rpc, which serve()'s guard protects.
    const rpc: Component = {
      kind: 'rpc',
      name: 'whoami',
      routes: (hono) => void (hono as Hono).get('/rpc/whoami', (c) => c.json({ ok: true })),
    }
    url = await start({ auth, rest: [api], components: [rpc], rateLimit: perUser })
    // Tokens from Auth itself: logins over HTTP would spend the address's budget of the limit.
    for (const who of ['ada-rest', 'bob-rest', 'ada-rpc', 'bob-rpc', 'cy']) {
      const email = `${uniqueName(who)}@example.test`
      await auth.users.create({ email, password: PASSWORD, roles: [] })
      tokens.set(who, (await auth.login(email, PASSWORD, { address: '192.0.2.1' })).accessToken)
    }
  })

  const get = async (path: string, who: string, from: string) => {
    const r = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${tokens.get(who)!}`, 'x-forwarded-for': from } })
    if (r.status === 429) expect(((await r.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED')
    else await r.arrayBuffer()
    return r.status
  }

  for (const [path, suffix] of [
    ['/api/orders', 'rest'],
    ['/rpc/whoami', 'rpc'],
  ] as const) {
    it(`${path}: two users from one address each get their own budget`, async () => {
      const from = '203.0.113.9'
      const ada: number[] = []
      for (let i = 0; i < 4; i++) ada.push(await get(path, `ada-${suffix}`, from))
      expect(ada).toEqual([200, 200, 200, 429])
      // Bob shares Ada's address, not her budget.
      expect(await get(path, `bob-${suffix}`, from)).toBe(200)
    })
  }

  it('one user from many addresses spends one budget', async () => {
    const statuses: number[] = []
    for (let i = 1; i <= 4; i++) statuses.push(await get('/api/orders', 'cy', `198.51.100.${i}`))
    expect(statuses).toEqual([200, 200, 200, 429])
  })
})

describe("a REST route's own rate limit behind serve({ trustProxy })", () => {
  it('reads the client address through the proxies serve() was given: two clients behind the proxy get a budget each', async () => {
    const perIp = RateLimit.create(uniqueName('route-ip')).points(2).per('1m').by('ip').build()
    const api = REST.create('quotes').get('/api/quote', { rateLimit: perIp }, () => ({ ok: true })).build()
    const url = await start({ rest: [api] })
    const get = async (from: string) => {
      const r = await fetch(`${url}/api/quote`, { headers: { 'x-forwarded-for': from } })
      await r.arrayBuffer()
      return r.status
    }
    const one: number[] = []
    for (let i = 0; i < 3; i++) one.push(await get('203.0.113.20'))
    expect(one).toEqual([200, 200, 429])
    expect(await get('203.0.113.21')).toBe(200)
  })
})
