// The security suite of Auth (docs/auth.md): every attack is answered 401,
// 403 or 429 with OnePipe's JSON error body, and changes nothing. Runs on the
// backend of the run: PostgreSQL + Redis, or PGlite + memory with
// ONEPIPE_TEST_BACKEND=embedded (CI runs both).
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { Hono } from 'hono'
import { SignJWT, decodeJwt } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Auth, can, REST, type Cache, type Database } from '@onepipe/sdk'
import { testCache, testDatabase } from '@onepipe/testing'
import { bearer, call, cookiesOf, PASSWORD, refused, SECRET } from './helpers.js'

let db: Database
let cache: Cache
const cleanups: (() => Promise<void>)[] = []
let auth: Auth
let quick: Auth
let app: Hono
let quickApp: Hono
/** Every secret handed out in this file, to look for in the tables at the end. */
const secrets = new Set<string>([PASSWORD])

const ip = () => `198.51.100.${Math.floor(Math.random() * 250) + 1}`
const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
const writes = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM sec_orders'))[0]!.n

function build(name: string, extra: (b: ReturnType<typeof Auth.create>) => ReturnType<typeof Auth.create> = (b) => b): Auth {
  return extra(
    Auth.create(name)
      .db(db)
      .cache(cache)
      .secret(SECRET)
      .roles({ billing: ['invoices:read'] })
      .clientAddress((c) => c.req.header('x-test-ip') ?? '203.0.113.9'),
  ).build()
}

let admin: { id: string; token: string }

async function newUser(roles: string[], email = `u-${randomBytes(4).toString('hex')}@example.com`) {
  const u = await auth.users.create({ email, password: PASSWORD, roles })
  const s = await auth.login(email, PASSWORD, { address: ip() })
  secrets.add(s.refreshToken).add(s.accessToken)
  return { ...u, session: s }
}

beforeAll(async () => {
  const d = await testDatabase()
  const c = await testCache()
  db = d.db
  cache = c.cache
  cleanups.push(c.cleanup, d.cleanup)
  await db.execute('CREATE TABLE sec_orders (id serial PRIMARY KEY, by text NOT NULL)')
  auth = build('sec')
  quick = build('sec-quick', (b) => b.reuseInterval('1s'))
  await auth.ready()
  await quick.ready()
  app = new Hono()
  auth.routes(app)
  quickApp = new Hono()
  quick.routes(quickApp)
  const orders = REST.create('sec-orders')
    .auth(auth)
    .get('/api/orders', { roles: ['viewer'] }, async (ctx) => ({ n: (await ctx.db.query('SELECT id FROM sec_orders')).length }))
    .post('/api/orders', { permission: 'onepipe:write' }, async (ctx) => {
      await ctx.db.execute('INSERT INTO sec_orders (by) VALUES ($1)', [ctx.user!.id])
      return ctx.created({ ok: true })
    })
    .delete('/api/orders', { roles: ['admin'] }, async (ctx) => ctx.db.execute('DELETE FROM sec_orders').then(() => undefined))
    .get('/api/invoices', { permission: 'invoices:read' }, () => ({ invoices: [] }))
    .post('/api/apps/:appId/orders', { permission: 'onepipe:write' }, async (ctx) => {
      if (!can(ctx.user, 'onepipe:write', { applicationId: ctx.params.appId })) return ctx.forbidden('Not your application')
      await ctx.db.execute('INSERT INTO sec_orders (by) VALUES ($1)', [ctx.params.appId])
      return ctx.created({ ok: true })
    })
    .db(db)
    .build()
  app.route('/', orders.app)
  const a = await newUser(['admin'])
  admin = { id: a.id, token: a.session.accessToken }
})

afterAll(async () => {
  await auth.close()
  await quick.close()
  for (const c of cleanups) await c()
})

describe('access tokens', () => {
  /** A token with the right key and claims except what `change` alters. */
  async function forged(change: (j: SignJWT) => SignJWT, key: Uint8Array = new TextEncoder().encode(SECRET), typ = 'at+jwt') {
    const u = await newUser(['admin'])
    const now = Math.floor(Date.now() / 1000)
    const j = new SignJWT({ sid: u.session.sessionId, roles: ['admin'] })
      .setProtectedHeader({ alg: 'HS256', typ })
      .setSubject(u.id)
      .setIssuer('onepipe')
      .setAudience('onepipe')
      .setJti('j1')
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
    return change(j).sign(key)
  }

  async function attack(token: string, code: string) {
    const before = await writes()
    await refused(await call(app, 'POST', '/api/orders', { headers: bearer(token), body: {} }), 401, code)
    await refused(await call(app, 'GET', '/__onepipe/auth/me', { headers: bearer(token) }), 401, code)
    expect(await writes()).toBe(before)
  }

  it('a forged token made right is accepted (the control for every case below)', async () => {
    const before = await writes()
    const res = await call(app, 'POST', '/api/orders', { headers: bearer(await forged((j) => j)), body: {} })
    expect(res.status).toBe(201)
    expect(await writes()).toBe(before + 1)
  })

  it('alg: none', async () => {
    const good = decodeJwt(await forged((j) => j))
    await attack(`${enc({ alg: 'none', typ: 'at+jwt' })}.${enc(good)}.`, 'TOKEN_INVALID')
    await attack(`${enc({ alg: 'none', typ: 'at+jwt' })}.${enc(good)}.c2ln`, 'TOKEN_INVALID')
  })

  it('a token signed with the wrong key', async () => {
    await attack(await forged((j) => j, new TextEncoder().encode('another-secret-of-at-least-32-bytes!!')), 'TOKEN_INVALID')
  })

  it('HS/RS confusion: an RS256 token against an HS256 server, and an HS256 token keyed with the public key against an ES256 server', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const u = await newUser(['admin'])
    const now = Math.floor(Date.now() / 1000)
    const rs = await new SignJWT({ sid: u.session.sessionId, roles: ['admin'] })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' })
      .setSubject(u.id)
      .setIssuer('onepipe')
      .setAudience('onepipe')
      .setJti('j')
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(rsa.privateKey)
    await attack(rs, 'TOKEN_INVALID')

    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const es = Auth.create('sec-es').db(db).privateKey(ec.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string).build()
    const esApp = new Hono()
    es.routes(esApp)
    try {
      const jwks = (await (await esApp.request('/.well-known/jwks.json')).json()) as { keys: { alg: string; kty: string }[] }
      expect(jwks.keys).toMatchObject([{ alg: 'ES256', kty: 'EC', use: 'sig' }])
      const s = await es.login(u.email, PASSWORD, { address: ip() })
      expect((await esApp.request('/__onepipe/auth/me', { headers: bearer(s.accessToken) })).status).toBe(200)
      // The classic confusion: the public key (as PEM, and as JWK JSON) used as an HMAC secret.
      for (const pub of [ec.publicKey.export({ format: 'pem', type: 'spki' }) as string, JSON.stringify(jwks.keys[0])]) {
        const hs = await new SignJWT({ sid: s.sessionId, roles: ['admin'] })
          .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
          .setSubject(u.id)
          .setIssuer('onepipe')
          .setAudience('onepipe')
          .setJti('j')
          .setIssuedAt(now)
          .setExpirationTime(now + 600)
          .sign(new TextEncoder().encode(pub))
        await refused(await esApp.request('/__onepipe/auth/me', { headers: bearer(hs) }), 401, 'TOKEN_INVALID')
      }
      // And an ES256 token does not pass the HS256 server.
      await attack(s.accessToken, 'TOKEN_INVALID')
    } finally {
      await es.close()
    }
    // No JWKS with a shared secret: nothing public to publish.
    expect((await app.request('/.well-known/jwks.json')).status).toBe(404)
  })

  it('expired and not-yet-valid tokens', async () => {
    const now = Math.floor(Date.now() / 1000)
    await attack(await forged((j) => j.setIssuedAt(now - 1000).setExpirationTime(now - 60)), 'TOKEN_EXPIRED')
    await attack(await forged((j) => j.setNotBefore(now + 120)), 'TOKEN_INVALID')
  })

  it('wrong issuer or audience, or not an access token (typ)', async () => {
    await attack(await forged((j) => j.setIssuer('someone-else')), 'TOKEN_INVALID')
    await attack(await forged((j) => j.setAudience('another-api')), 'TOKEN_INVALID')
    await attack(await forged((j) => j, undefined, 'JWT'), 'TOKEN_INVALID')
  })

  it('a tampered payload', async () => {
    const v = await newUser(['viewer'])
    const [h, , sig] = v.session.accessToken.split('.')
    const payload = { ...decodeJwt(v.session.accessToken), roles: ['admin'], sub: admin.id }
    await attack(`${h}.${enc(payload)}.${sig}`, 'TOKEN_INVALID')
    await attack(`${v.session.accessToken.slice(0, -2)}AA`, 'TOKEN_INVALID')
    await attack('not-a-jwt', 'TOKEN_INVALID')
  })

  it('a token of a disabled user, at once', async () => {
    const u = await newUser(['operator'])
    expect((await call(app, 'GET', '/api/orders', { headers: bearer(u.session.accessToken) })).status).toBe(200)
    expect((await call(app, 'POST', `/__onepipe/auth/users/${u.id}/disable`, { headers: bearer(admin.token) })).status).toBe(200)
    await attack(u.session.accessToken, 'ACCOUNT_DISABLED')
    await refused(await call(app, 'POST', '/__onepipe/auth/refresh', { body: { refreshToken: u.session.refreshToken } }), 401, 'ACCOUNT_DISABLED')
    // With the right password, a disabled account still cannot log in.
    await refused(await call(app, 'POST', '/__onepipe/auth/login', { body: { email: u.email, password: PASSWORD }, ip: ip() }), 401, 'ACCOUNT_DISABLED')
  })

  it('a session of a user whose roles were lowered gets the new roles at once', async () => {
    const u = await newUser(['admin'])
    expect((await call(app, 'DELETE', '/api/orders', { headers: bearer(u.session.accessToken) })).status).toBe(204)
    await auth.users.setRoles(u.id, ['viewer'])
    await refused(await call(app, 'DELETE', '/api/orders', { headers: bearer(u.session.accessToken) }), 403, 'FORBIDDEN')
  })
})

describe('refresh tokens', () => {
  it('a reused refresh token revokes the family: the rotated one is dead too, and its access tokens', async () => {
    const u = await newUser(['viewer'])
    const s = await quick.login(u.email, PASSWORD, { address: ip() })
    const next = await quick.refresh(s.refreshToken)
    secrets.add(next.refreshToken)
    await new Promise((r) => setTimeout(r, 1300))
    await refused(await call(quickApp, 'POST', '/__onepipe/auth/refresh', { body: { refreshToken: s.refreshToken } }), 401, 'TOKEN_REVOKED')
    await refused(await call(quickApp, 'POST', '/__onepipe/auth/refresh', { body: { refreshToken: next.refreshToken } }), 401, 'TOKEN_REVOKED')
    await refused(await call(app, 'GET', '/api/orders', { headers: bearer(next.accessToken) }), 401, 'TOKEN_REVOKED')
    const [row] = await db.query<{ revoked_reason: string }>('SELECT revoked_reason FROM _onepipe_auth_sessions WHERE id = $1', [s.sessionId])
    expect(row?.revoked_reason).toBe('reuse')
  })

  it('20 concurrent refreshes of one token within the reuse interval all succeed with the same pair, one family left alive', async () => {
    const u = await newUser(['viewer'])
    const answers = await Promise.all(Array.from({ length: 20 }, () => call(app, 'POST', '/__onepipe/auth/refresh', { body: { refreshToken: u.session.refreshToken } })))
    expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200))
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as { refreshToken: string; accessToken: string }[]
    expect(new Set(bodies.map((b) => b.refreshToken)).size).toBe(1)
    const claims = bodies.map((b) => decodeJwt(b.accessToken))
    expect(new Set(claims.map((c) => JSON.stringify(c))).size).toBe(1)
    const pair = bodies[0]!
    secrets.add(pair.refreshToken)
    const sessions = await db.query<{ revoked_at: Date | null }>('SELECT revoked_at FROM _onepipe_auth_sessions WHERE user_id = $1', [u.id])
    expect(sessions).toEqual([{ revoked_at: null }])
    expect((await call(app, 'GET', '/api/orders', { headers: bearer(pair.accessToken) })).status).toBe(200)
    const after = await call(app, 'POST', '/__onepipe/auth/refresh', { body: { refreshToken: pair.refreshToken } })
    expect(after.status).toBe(200)
    secrets.add(((await after.json()) as { refreshToken: string }).refreshToken)
  })

  it('logout revokes the session: its access token and refresh token stop at once', async () => {
    const u = await newUser(['viewer'])
    expect((await call(app, 'GET', '/api/orders', { headers: bearer(u.session.accessToken) })).status).toBe(200)
    expect((await call(app, 'POST', '/__onepipe/auth/logout', { headers: bearer(u.session.accessToken) })).status).toBe(204)
    await refused(await call(app, 'GET', '/api/orders', { headers: bearer(u.session.accessToken) }), 401, 'TOKEN_REVOKED')
    await refused(await call(app, 'POST', '/__onepipe/auth/refresh', { body: { refreshToken: u.session.refreshToken } }), 401, 'TOKEN_REVOKED')
  })

  it('an unknown or malformed refresh token', async () => {
    await refused(await call(app, 'POST', '/__onepipe/auth/refresh', { body: { refreshToken: randomBytes(32).toString('base64url') } }), 401, 'TOKEN_INVALID')
    await refused(await call(app, 'POST', '/__onepipe/auth/refresh', { body: { refreshToken: 'x' } }), 401, 'TOKEN_INVALID')
    await refused(await call(app, 'POST', '/__onepipe/auth/refresh', {}), 401, 'UNAUTHORIZED')
  })
})

describe('API keys', () => {
  let appA: string
  let appB: string
  let keyA: string
  let keyB: string
  beforeAll(async () => {
    appA = (await auth.applications.create({ name: 'a' })).id
    appB = (await auth.applications.create({ name: 'b' })).id
    keyA = (await auth.apiKeys.create(appA, { name: 'a', roles: ['admin'] })).key
    keyB = (await auth.apiKeys.create(appB, { name: 'b', roles: ['admin'] })).key
    secrets.add(keyA).add(keyB)
  })

  it("a key works for its own application's data (the control)", async () => {
    const before = await writes()
    expect((await call(app, 'POST', `/api/apps/${appA}/orders`, { headers: { 'x-api-key': keyA }, body: {} })).status).toBe(201)
    expect((await call(app, 'GET', `/__onepipe/auth/applications/${appA}/keys`, { headers: { 'x-api-key': keyA } })).status).toBe(200)
    expect(await writes()).toBe(before + 1)
  })

  it('a wrong key: unknown, malformed, or one character off', async () => {
    const before = await writes()
    for (const key of [`op_abcdefgh_${randomBytes(32).toString('base64url')}`, 'nonsense', `${keyA.slice(0, -1)}${keyA.endsWith('A') ? 'B' : 'A'}`]) {
      await refused(await call(app, 'POST', `/api/apps/${appA}/orders`, { headers: { 'x-api-key': key }, body: {} }), 401, 'API_KEY_INVALID')
    }
    expect(await writes()).toBe(before)
  })

  it('a disabled key, at once', async () => {
    const { key, apiKey } = await auth.apiKeys.create(appA, { name: 'soon-off', roles: ['operator'] })
    secrets.add(key)
    expect((await call(app, 'GET', '/api/orders', { headers: { 'x-api-key': key } })).status).toBe(200)
    expect((await call(app, 'POST', `/__onepipe/auth/keys/${apiKey.id}/disable`, { headers: bearer(admin.token) })).status).toBe(200)
    const before = await writes()
    await refused(await call(app, 'POST', `/api/apps/${appA}/orders`, { headers: { 'x-api-key': key }, body: {} }), 401, 'API_KEY_INVALID')
    expect(await writes()).toBe(before)
  })

  it("another application's key sees none of this application's data", async () => {
    const before = await writes()
    await refused(await call(app, 'POST', `/api/apps/${appA}/orders`, { headers: { 'x-api-key': keyB }, body: {} }), 403, 'FORBIDDEN')
    await refused(await call(app, 'GET', `/__onepipe/auth/applications/${appA}/keys`, { headers: { 'x-api-key': keyB } }), 403, 'FORBIDDEN')
    await refused(await call(app, 'POST', `/__onepipe/auth/applications/${appA}/keys`, { headers: { 'x-api-key': keyB }, body: { name: 'mine now' } }), 403, 'FORBIDDEN')
    const listed = (await (await call(app, 'GET', '/__onepipe/auth/applications', { headers: { 'x-api-key': keyB } })).json()) as { applications: { id: string }[] }
    expect(listed.applications.map((a) => a.id)).toEqual([appB])
    // Nor may a key manage people.
    await refused(await call(app, 'GET', '/__onepipe/auth/users', { headers: { 'x-api-key': keyB } }), 403, 'FORBIDDEN')
    expect(await writes()).toBe(before)
    expect((await auth.apiKeys.list(appA)).map((k) => k.name)).not.toContain('mine now')
  })
})

describe('roles', () => {
  it('401 without credentials, 403 with the wrong role or permission, nothing written', async () => {
    const viewer = await newUser(['viewer'])
    const before = await writes()
    await refused(await call(app, 'POST', '/api/orders', { body: {} }), 401, 'UNAUTHORIZED')
    await refused(await call(app, 'POST', '/api/orders', { headers: bearer(viewer.session.accessToken), body: {} }), 403, 'FORBIDDEN')
    await refused(await call(app, 'DELETE', '/api/orders', { headers: bearer(viewer.session.accessToken) }), 403, 'FORBIDDEN')
    await refused(await call(app, 'GET', '/api/invoices', { headers: bearer(viewer.session.accessToken) }), 403, 'FORBIDDEN')
    await refused(await call(app, 'POST', '/__onepipe/auth/users', { headers: bearer(viewer.session.accessToken), body: { email: 'x@example.com', password: PASSWORD, roles: ['admin'] } }), 403, 'FORBIDDEN')
    await refused(await call(app, 'POST', '/__onepipe/auth/users', { body: { email: 'x@example.com', password: PASSWORD } }), 401, 'UNAUTHORIZED')
    expect(await writes()).toBe(before)
    expect((await auth.users.list()).map((u) => u.email)).not.toContain('x@example.com')
    // The hierarchy and app roles: admin ⊇ operator ⊇ viewer, billing grants invoices:read.
    const billing = await newUser(['billing'])
    expect((await call(app, 'GET', '/api/invoices', { headers: bearer(billing.session.accessToken) })).status).toBe(200)
    expect((await call(app, 'GET', '/api/invoices', { headers: bearer(admin.token) })).status).toBe(200)
    const operator = await newUser(['operator'])
    expect((await call(app, 'GET', '/api/orders', { headers: bearer(operator.session.accessToken) })).status).toBe(200)
    await refused(await call(app, 'GET', '/api/orders', { headers: bearer(billing.session.accessToken) }), 403, 'FORBIDDEN')
  })
})

describe('browser cookies and CSRF', () => {
  async function browserLogin() {
    const u = await auth.users.create({ email: `b-${randomBytes(4).toString('hex')}@example.com`, password: PASSWORD, roles: ['operator'] })
    const res = await call(app, 'POST', '/__onepipe/auth/login', { headers: { origin: 'http://localhost' }, body: { email: u.email, password: PASSWORD }, ip: ip() })
    expect(res.status).toBe(200)
    const body = (await res.json()) as { csrfToken: string; accessToken?: string }
    const jar = cookiesOf(res)
    expect(body.accessToken).toBeUndefined()
    expect(jar.onepipe_access?.attrs).toMatch(/HttpOnly/)
    expect(jar.onepipe_access?.attrs).toMatch(/SameSite=Lax/)
    expect(jar.onepipe_refresh?.attrs).toMatch(/HttpOnly.*|Path=\/__onepipe\/auth/)
    expect(jar.onepipe_csrf?.attrs).not.toMatch(/HttpOnly/)
    expect(jar.onepipe_csrf?.value).toBe(body.csrfToken)
    secrets.add(jar.onepipe_refresh!.value).add(jar.onepipe_access!.value)
    const cookie = `onepipe_access=${jar.onepipe_access!.value}; onepipe_refresh=${jar.onepipe_refresh!.value}; onepipe_csrf=${body.csrfToken}`
    return { cookie, csrf: body.csrfToken }
  }

  it('a cookie-authenticated POST from another Origin, or without the CSRF token, changes nothing', async () => {
    const { cookie, csrf } = await browserLogin()
    const before = await writes()
    await refused(await call(app, 'POST', '/api/orders', { headers: { cookie, origin: 'https://evil.example', 'x-csrf-token': csrf }, body: {} }), 403, 'CSRF_FAILED')
    await refused(await call(app, 'POST', '/api/orders', { headers: { cookie, origin: 'null', 'x-csrf-token': csrf }, body: {} }), 403, 'CSRF_FAILED')
    await refused(await call(app, 'POST', '/api/orders', { headers: { cookie, origin: 'http://localhost' }, body: {} }), 403, 'CSRF_FAILED')
    await refused(await call(app, 'POST', '/api/orders', { headers: { cookie, 'x-csrf-token': 'forged' }, body: {} }), 403, 'CSRF_FAILED')
    // Another session's CSRF token does not fit this session (it is bound to the session).
    const other = await browserLogin()
    await refused(await call(app, 'POST', '/api/orders', { headers: { cookie, 'x-csrf-token': other.csrf }, body: {} }), 403, 'CSRF_FAILED')
    // Refresh and logout by cookie need it too.
    await refused(await call(app, 'POST', '/__onepipe/auth/refresh', { headers: { cookie, origin: 'https://evil.example', 'x-csrf-token': csrf } }), 403, 'CSRF_FAILED')
    await refused(await call(app, 'POST', '/__onepipe/auth/refresh', { headers: { cookie } }), 403, 'CSRF_FAILED')
    await refused(await call(app, 'POST', '/__onepipe/auth/logout', { headers: { cookie } }), 403, 'CSRF_FAILED')
    expect(await writes()).toBe(before)
    // GET needs no token; the right token from the right origin passes.
    expect((await call(app, 'GET', '/api/orders', { headers: { cookie } })).status).toBe(200)
    expect((await call(app, 'POST', '/api/orders', { headers: { cookie, origin: 'http://localhost', 'x-csrf-token': csrf }, body: {} })).status).toBe(201)
    expect(await writes()).toBe(before + 1)
    const r = await call(app, 'POST', '/__onepipe/auth/refresh', { headers: { cookie, origin: 'http://localhost', 'x-csrf-token': csrf } })
    expect(r.status).toBe(200)
    expect(cookiesOf(r).onepipe_refresh?.value).toMatch(/^[A-Za-z0-9_-]{43}$/)
    secrets.add(cookiesOf(r).onepipe_refresh!.value)
  })

  it('a login from another site is refused (login CSRF)', async () => {
    const u = await auth.users.create({ email: `c-${randomBytes(4).toString('hex')}@example.com`, password: PASSWORD })
    await refused(await call(app, 'POST', '/__onepipe/auth/login', { headers: { origin: 'https://evil.example' }, body: { email: u.email, password: PASSWORD }, ip: ip() }), 403, 'CSRF_FAILED')
  })
})

describe('login', () => {
  it('an unknown email and a wrong password: the same error, in comparable time', async () => {
    const u = await newUser([])
    // CPU time this process spent (argon2 runs on its thread pool), not wall time: other processes
    // loading the machine do not move it, while a missing dummy hash still shows as ~0.
    const time = async (email: string) => {
      const t0 = process.cpuUsage()
      const body = await refused(await call(app, 'POST', '/__onepipe/auth/login', { body: { email, password: 'wrong password here!' }, ip: ip() }), 401, 'INVALID_CREDENTIALS')
      const d = process.cpuUsage(t0)
      return { ms: (d.user + d.system) / 1000, message: body.error.message }
    }
    const known: number[] = []
    const unknown: number[] = []
    let messages = new Set<string>()
    for (let i = 0; i < 7; i++) {
      const a = await time(u.email)
      const b = await time(`nobody-${i}@example.com`)
      known.push(a.ms)
      unknown.push(b.ms)
      messages = messages.add(a.message).add(b.message)
    }
    expect(messages.size).toBe(1)
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[3]!
    // Both pay one argon2id verification (about 10 ms of CPU); a fast path for unknown emails would be under a tenth of it.
    expect(median(unknown)).toBeGreaterThan(median(known) / 3)
    expect(median(unknown)).toBeLessThan(median(known) * 3)
  })

  it('the 11th failed login in a minute for one account is a 429 with Retry-After, even with the right password', async () => {
    const u = await auth.users.create({ email: `t-${randomBytes(4).toString('hex')}@example.com`, password: PASSWORD })
    for (let i = 0; i < 10; i++) await refused(await call(app, 'POST', '/__onepipe/auth/login', { body: { email: u.email, password: 'not the password!' }, ip: ip() }), 401, 'INVALID_CREDENTIALS')
    const res = await call(app, 'POST', '/__onepipe/auth/login', { body: { email: u.email, password: PASSWORD }, ip: ip() })
    await refused(res.clone(), 429, 'TOO_MANY_ATTEMPTS')
    const after = Number(res.headers.get('retry-after'))
    expect(after).toBeGreaterThan(0)
    expect(after).toBeLessThanOrEqual(60)
    expect((await auth.users.get(u.id)).lastLoginAt).toBeNull()
  })

  it('the 11th failed login in a minute from one address is a 429, whatever the account', async () => {
    const from = '192.0.2.77'
    for (let i = 0; i < 10; i++) await refused(await call(app, 'POST', '/__onepipe/auth/login', { body: { email: `guess-${i}@example.com`, password: 'not the password!' }, ip: from }), 401, 'INVALID_CREDENTIALS')
    const u = await auth.users.create({ email: `v-${randomBytes(4).toString('hex')}@example.com`, password: PASSWORD })
    const res = await call(app, 'POST', '/__onepipe/auth/login', { body: { email: u.email, password: PASSWORD }, ip: from })
    await refused(res.clone(), 429, 'TOO_MANY_ATTEMPTS')
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
    // Another address is not held back.
    expect((await call(app, 'POST', '/__onepipe/auth/login', { body: { email: u.email, password: PASSWORD }, ip: ip() })).status).toBe(200)
  })

  it('a success clears the account count', async () => {
    const u = await auth.users.create({ email: `w-${randomBytes(4).toString('hex')}@example.com`, password: PASSWORD })
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 9; i++) await refused(await call(app, 'POST', '/__onepipe/auth/login', { body: { email: u.email, password: 'not the password!' }, ip: ip() }), 401, 'INVALID_CREDENTIALS')
      const ok = await call(app, 'POST', '/__onepipe/auth/login', { body: { email: u.email, password: PASSWORD }, ip: ip() })
      expect(ok.status).toBe(200)
      secrets.add(((await ok.json()) as { refreshToken: string }).refreshToken)
    }
  })
})

describe('storage', () => {
  it('the database holds no plaintext password, refresh token or API key', async () => {
    const tables = ['_onepipe_auth_users', '_onepipe_auth_sessions', '_onepipe_auth_refresh_tokens', '_onepipe_auth_applications', '_onepipe_auth_api_keys']
    let rows = 0
    for (const t of tables) {
      for (const r of await db.query<{ j: string }>(`SELECT row_to_json(x)::text AS j FROM ${t} x`)) {
        rows++
        for (const s of secrets) expect(r.j.includes(s), `${t} holds a secret`).toBe(false)
        // Not even the secret half of a key or a long piece of a token.
        for (const s of secrets) if (s.length >= 40) expect(r.j.includes(s.slice(-24))).toBe(false)
      }
    }
    expect(rows).toBeGreaterThan(50)
    expect(secrets.size).toBeGreaterThan(40)
    const hashes = await db.query<{ password_hash: string }>('SELECT password_hash FROM _onepipe_auth_users')
    for (const h of hashes) expect(h.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
    // Roles are stored as JSON arrays, not as JSON text holding one.
    expect(await db.query('SELECT DISTINCT jsonb_typeof(roles) AS t FROM _onepipe_auth_users')).toEqual([{ t: 'array' }])
  })
})
