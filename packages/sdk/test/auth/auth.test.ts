// Auth's edge cases: rotation chains and expiry, keys and configuration,
// the first admin, API key rotation, REST route options.
import { generateKeyPairSync } from 'node:crypto'
import { hash as argon2 } from '@node-rs/argon2'
import { Hono } from 'hono'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { Auth, ConfigError, REST, type Database } from '@onepipe/sdk'
import { testDatabase, waitFor } from '@onepipe/testing'
import { bearer, call, cookiesOf, PASSWORD, refused, SECRET } from './helpers.js'

let db: Database
let cleanup: () => Promise<void>
const auths: Auth[] = []
let auth: Auth
let n = 0

const keep = (a: Auth) => (auths.push(a), a)
const email = () => `e${++n}-${Date.now()}@example.com`
const addr = () => `192.0.2.${(n % 250) + 1}`

async function login(roles: string[] = ['viewer'], on = auth) {
  const e = email()
  const user = await on.users.create({ email: e, password: PASSWORD, roles })
  return { user, s: await on.login(e, PASSWORD, { address: addr() }) }
}

beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
  auth = keep(Auth.create('unit').db(db).secret(SECRET).build())
  await auth.ready()
})

afterAll(async () => {
  for (const a of auths) await a.close()
  await cleanup()
})

describe('refresh rotation', () => {
  it('a repeat of an old token within the interval answers with the newest pair of the chain', async () => {
    const { s } = await login()
    const t2 = await auth.refresh(s.refreshToken)
    const t3 = await auth.refresh(t2.refreshToken)
    const again = await auth.refresh(s.refreshToken)
    expect(again.refreshToken).toBe(t3.refreshToken)
    expect(decodeJwt(again.accessToken)).toEqual(decodeJwt(t3.accessToken))
    // HS256 is deterministic, so the access token is byte for byte the same.
    expect(again.accessToken).toBe(t3.accessToken)
    const t4 = await auth.refresh(t3.refreshToken)
    expect(t4.refreshToken).not.toBe(t3.refreshToken)
  })

  it('an expired refresh token is TOKEN_EXPIRED and ends nothing', async () => {
    const { s } = await login()
    await db.execute("UPDATE _onepipe_auth_refresh_tokens SET expires_at = now() - interval '1 second' WHERE session_id = $1", [s.sessionId])
    await expect(auth.refresh(s.refreshToken)).rejects.toMatchObject({ code: 'TOKEN_EXPIRED', status: 401 })
    expect((await auth.verifyAccessToken(s.accessToken)).sessionId).toBe(s.sessionId)
  })

  it('with a reuse interval of 0 any repeat is theft', async () => {
    const strict = keep(Auth.create('strict').db(db).secret(SECRET).reuseInterval(0).build())
    const { s } = await login(['viewer'], strict)
    const next = await strict.refresh(s.refreshToken)
    await expect(strict.refresh(s.refreshToken)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' })
    await expect(strict.refresh(next.refreshToken)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' })
    await expect(strict.verifyAccessToken(next.accessToken)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' })
  })

  it('refresh tokens of another secret are unknown here; malformed ones are refused before any query', async () => {
    await expect(auth.refresh('a'.repeat(43))).rejects.toMatchObject({ code: 'TOKEN_INVALID' })
    await expect(auth.refresh('short')).rejects.toMatchObject({ code: 'TOKEN_INVALID' })
    await expect(auth.refresh(42 as unknown as string)).rejects.toMatchObject({ code: 'TOKEN_INVALID' })
  })

  it('logout by refresh token, and logout of every session', async () => {
    const { user, s } = await login()
    const s2 = await auth.login(user.email, PASSWORD, { address: addr() })
    await auth.logout({ refreshToken: s.refreshToken })
    await expect(auth.verifyAccessToken(s.accessToken)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' })
    expect((await auth.verifyAccessToken(s2.accessToken)).id).toBe(user.id)
    await auth.logout({ refreshToken: s.refreshToken }) // again: not an error
    await auth.logout({ userId: user.id, all: true })
    await expect(auth.verifyAccessToken(s2.accessToken)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' })
  })

  it('a new password ends every session', async () => {
    const { user, s } = await login()
    await auth.users.setPassword(user.id, 'another long passphrase')
    await expect(auth.verifyAccessToken(s.accessToken)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' })
    await expect(auth.login(user.email, PASSWORD, { address: addr() })).rejects.toMatchObject({ code: 'INVALID_CREDENTIALS' })
    expect((await auth.login(user.email, 'another long passphrase', { address: addr() })).user.id).toBe(user.id)
  })
})

describe('accounts', () => {
  it('emails are unique whatever their case, and compared so at login', async () => {
    const e = email()
    await auth.users.create({ email: e.toUpperCase(), password: PASSWORD })
    await expect(auth.users.create({ email: e, password: PASSWORD })).rejects.toMatchObject({ code: 'EMAIL_TAKEN', status: 409 })
    expect((await auth.login(e, PASSWORD, { address: addr() })).user.email).toBe(e.toUpperCase())
  })

  it('refuses short passwords, bad emails and unknown roles', async () => {
    await expect(auth.users.create({ email: email(), password: 'short' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    await expect(auth.users.create({ email: 'not an email', password: PASSWORD })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    await expect(auth.users.create({ email: email(), password: PASSWORD, roles: ['wizard'] })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
  })

  it('a hash made with weaker parameters is upgraded at the next login', async () => {
    const { user } = await login()
    const weak = await argon2(PASSWORD, { algorithm: 2, memoryCost: 4096, timeCost: 1, parallelism: 1 })
    await db.execute('UPDATE _onepipe_auth_users SET password_hash = $2 WHERE id = $1', [user.id, weak])
    await auth.login(user.email, PASSWORD, { address: addr() })
    const [row] = await db.query<{ h: string }>('SELECT password_hash AS h FROM _onepipe_auth_users WHERE id = $1', [user.id])
    expect(row?.h).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
  })

  it('the admin routes: create, list, roles, disable and enable; an admin cannot disable themselves', async () => {
    const app = new Hono()
    auth.routes(app)
    const { user: me, s } = await login(['admin'])
    const created = await call(app, 'POST', '/__onepipe/auth/users', { headers: bearer(s.accessToken), body: { email: 'route@example.com', password: PASSWORD, roles: ['viewer'] } })
    expect(created.status).toBe(201)
    const { user } = (await created.json()) as { user: { id: string; roles: string[] } }
    expect(user).not.toHaveProperty('password_hash')
    const listed = (await (await call(app, 'GET', '/__onepipe/auth/users?limit=1000', { headers: bearer(s.accessToken) })).json()) as { users: { email: string }[] }
    expect(listed.users.map((u) => u.email)).toContain('route@example.com')
    const roles = await call(app, 'PUT', `/__onepipe/auth/users/${user.id}/roles`, { headers: bearer(s.accessToken), body: { roles: ['operator'] } })
    expect(((await roles.json()) as { user: { roles: string[] } }).user.roles).toEqual(['operator'])
    expect((await call(app, 'POST', `/__onepipe/auth/users/${user.id}/disable`, { headers: bearer(s.accessToken) })).status).toBe(200)
    expect((await call(app, 'POST', `/__onepipe/auth/users/${user.id}/enable`, { headers: bearer(s.accessToken) })).status).toBe(200)
    await refused(await call(app, 'POST', `/__onepipe/auth/users/${me.id}/disable`, { headers: bearer(s.accessToken) }), 400, 'VALIDATION_FAILED')
    await refused(await call(app, 'GET', '/__onepipe/auth/users/not-an-id', { headers: bearer(s.accessToken) }), 404, 'USER_NOT_FOUND')
    const meRes = await call(app, 'GET', '/__onepipe/auth/me', { headers: bearer(s.accessToken) })
    expect(await meRes.json()).toEqual({ user: { id: me.id, kind: 'user', email: me.email, roles: ['admin'], permissions: ['onepipe:admin', 'onepipe:read', 'onepipe:write'], sessionId: s.sessionId } })
  })
})

describe('API keys', () => {
  it('rotation stops the old key at once, or after an overlap', async () => {
    const a = await auth.applications.create({ name: 'rot' })
    const first = await auth.apiKeys.create(a.id, { name: 'k', roles: ['viewer'] })
    const api = REST.create('k').auth(auth).get('/k', { roles: ['viewer'] }, (ctx) => ({ app: ctx.user?.applicationId })).build()
    const get = (key: string) => api.request('/k', { headers: { 'x-api-key': key } })
    expect(await (await get(first.key)).json()).toEqual({ app: a.id })
    const second = await auth.apiKeys.rotate(first.apiKey.id)
    expect((await get(first.key)).status).toBe(401)
    expect((await get(second.key)).status).toBe(200)
    await expect(auth.apiKeys.rotate(first.apiKey.id)).rejects.toMatchObject({ code: 'API_KEY_DISABLED' })
    const third = await auth.apiKeys.rotate(second.apiKey.id, { overlapMs: 3_600_000 })
    expect((await get(second.key)).status).toBe(200)
    expect((await get(third.key)).status).toBe(200)
    const listed = await auth.apiKeys.list(a.id)
    expect(listed.map((k) => [k.prefix, k.disabled, k.replacedBy !== null])).toEqual([
      [first.apiKey.prefix, true, true],
      [second.apiKey.prefix, false, true],
      [third.apiKey.prefix, false, false],
    ])
    expect(third.key.startsWith(third.apiKey.prefix)).toBe(true)
    expect(listed[1]?.expiresAt).not.toBeNull()
  })

  it('last_used_at is written once a minute per key, not per request', async () => {
    const a = await auth.applications.create({ name: 'touch' })
    const { key, apiKey } = await auth.apiKeys.create(a.id, { name: 'k', roles: ['viewer'] })
    const api = REST.create('t').auth(auth).get('/t', { roles: ['viewer'] }, () => ({ ok: true })).build()
    expect((await api.request('/t', { headers: { 'x-api-key': key } })).status).toBe(200)
    const first = await waitFor(async () => (await auth.apiKeys.get(apiKey.id)).lastUsedAt)
    for (let i = 0; i < 5; i++) await api.request('/t', { headers: { 'x-api-key': key } })
    await new Promise((r) => setTimeout(r, 100))
    expect((await auth.apiKeys.get(apiKey.id)).lastUsedAt).toBe(first)
  })
})

describe('cookies', () => {
  it('a browser login sets three cookies, GET needs no CSRF token, logout clears them', async () => {
    const app = new Hono()
    auth.routes(app)
    const e = email()
    await auth.users.create({ email: e, password: PASSWORD, roles: ['viewer'] })
    const res = await call(app, 'POST', '/__onepipe/auth/login', { body: { email: e, password: PASSWORD, mode: 'cookie' }, ip: addr() })
    const jar = cookiesOf(res)
    expect(Object.keys(jar).sort()).toEqual(['onepipe_access', 'onepipe_csrf', 'onepipe_refresh'])
    expect(jar.onepipe_refresh?.attrs).toContain('Path=/__onepipe/auth')
    // Over plain http outside production the cookies are not Secure (a browser would drop them); over https they are.
    expect(jar.onepipe_access?.attrs).not.toContain('Secure')
    const tls = await app.request('https://shop.example/__onepipe/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: e, password: PASSWORD, mode: 'cookie' }) })
    expect(cookiesOf(tls).onepipe_access?.attrs).toContain('Secure')
    const cookie = `onepipe_access=${jar.onepipe_access!.value}; onepipe_refresh=${jar.onepipe_refresh!.value}`
    expect((await call(app, 'GET', '/__onepipe/auth/me', { headers: { cookie } })).status).toBe(200)
    const out = await call(app, 'POST', '/__onepipe/auth/logout', { headers: { cookie, 'x-csrf-token': jar.onepipe_csrf!.value } })
    expect(out.status).toBe(204)
    expect(Object.values(cookiesOf(out)).map((c) => c.attrs)).toEqual([expect.stringContaining('Max-Age=0'), expect.stringContaining('Max-Age=0'), expect.stringContaining('Max-Age=0')])
    await refused(await call(app, 'GET', '/__onepipe/auth/me', { headers: { cookie } }), 401, 'TOKEN_REVOKED')
  })
})

describe('signing keys and configuration', () => {
  const env = (vars: Record<string, string | undefined>, fn: () => void) => {
    const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
    for (const [k, v] of Object.entries(vars)) if (v === undefined) delete process.env[k]
    else process.env[k] = v
    try {
      fn()
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }

  it('no default secret: production refuses to build without one, naming the variables', () => {
    env({ NODE_ENV: 'production', ONEPIPE_AUTH_SECRET: undefined, ONEPIPE_AUTH_PRIVATE_KEY: undefined }, () => {
      const err = ((): unknown => {
        try {
          Auth.create('prod').db(db).build()
          return undefined
        } catch (e) {
          return e
        }
      })()
      expect(err).toBeInstanceOf(ConfigError)
      expect(err).toMatchObject({ code: 'AUTH_SECRET_MISSING' })
      expect((err as Error).message).toContain('ONEPIPE_AUTH_SECRET')
      expect((err as Error).message).toContain('ONEPIPE_AUTH_PRIVATE_KEY')
    })
  })

  it('development makes an ephemeral secret and says so', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      env({ NODE_ENV: 'development', ONEPIPE_AUTH_SECRET: undefined, ONEPIPE_AUTH_PRIVATE_KEY: undefined }, () => {
        expect(Auth.create('dev').db(db).build().algorithm).toBe('HS256')
      })
      expect(write.mock.calls.map((c) => String(c[0])).join('')).toMatch(/ephemeral secret/)
    } finally {
      write.mockRestore()
    }
  })

  it('reads the environment, and refuses weak, ambiguous or unsupported keys', () => {
    env({ ONEPIPE_AUTH_SECRET: SECRET, ONEPIPE_AUTH_PRIVATE_KEY: undefined }, () => expect(Auth.create('env').db(db).build().algorithm).toBe('HS256'))
    expect(() => Auth.create('weak').secret('too short').build()).toThrow(expect.objectContaining({ code: 'AUTH_SECRET_WEAK' }))
    const ed = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
    expect(() => Auth.create('both').secret(SECRET).privateKey(ed).build()).toThrow(expect.objectContaining({ code: 'AUTH_KEY_AMBIGUOUS' }))
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
    expect(() => Auth.create('rsa').privateKey(rsa).build()).toThrow(expect.objectContaining({ code: 'AUTH_KEY_INVALID' }))
    expect(() => Auth.create('junk').privateKey('-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----').build()).toThrow(expect.objectContaining({ code: 'AUTH_KEY_INVALID' }))
    // A PEM kept on one line with \n escapes, as many hosts store it.
    env({ ONEPIPE_AUTH_SECRET: undefined, ONEPIPE_AUTH_PRIVATE_KEY: ed.replace(/\n/g, '\\n') }, () => expect(Auth.create('ed').db(db).build().algorithm).toBe('EdDSA'))
    expect(() => Auth.create('ttl').secret(SECRET).accessTtl('1d').build()).toThrow(expect.objectContaining({ code: 'AUTH_INVALID_TTL' }))
    expect(() => Auth.create('role').secret(SECRET).roles({ 'bad role': [] }).build()).toThrow(expect.objectContaining({ code: 'INVALID_ROLE' }))
  })

  it('EdDSA tokens carry the key id of the published JWKS', async () => {
    const ed = keep(Auth.create('ed').db(db).privateKey(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string).build())
    const { s } = await login(['viewer'], ed)
    const [jwk] = ed.jwks().keys
    expect(decodeProtectedHeader(s.accessToken)).toEqual({ alg: 'EdDSA', typ: 'at+jwt', kid: jwk?.kid })
    expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' })
    expect(jwk).not.toHaveProperty('d')
    expect(auth.jwks()).toEqual({ keys: [] })
  })

  it('the first admin comes from the environment once and is never overwritten', async () => {
    const e = email()
    const boot = (password: string) =>
      new Promise<void>((resolve, reject) =>
        env({ ONEPIPE_ADMIN_EMAIL: e, ONEPIPE_ADMIN_PASSWORD: password }, () => {
          const a = keep(Auth.create('boot').db(db).secret(SECRET).build())
          a.ready().then(resolve, reject)
        }),
      )
    await boot(PASSWORD)
    await boot('a different password now')
    const s = await auth.login(e, PASSWORD, { address: addr() })
    expect(s.user.roles).toEqual(['admin'])
    const incomplete = new Promise<unknown>((resolve) =>
      env({ ONEPIPE_ADMIN_EMAIL: email(), ONEPIPE_ADMIN_PASSWORD: undefined }, () => {
        keep(Auth.create('half').db(db).secret(SECRET).build()).ready().then(resolve, resolve)
      }),
    )
    const err = await incomplete
    expect(err).toMatchObject({ code: 'AUTH_ADMIN_INCOMPLETE' })
    expect((err as Error).message).toContain('ONEPIPE_ADMIN_PASSWORD')
  })
})

describe('REST route options', () => {
  it('roles or a permission need .auth(), and cannot be public', () => {
    expect(() => REST.create('x').get('/', { roles: ['admin'] }, () => 1).build()).toThrow(expect.objectContaining({ code: 'REST_NO_AUTH' }))
    expect(() => REST.create('x').auth(auth).get('/', { auth: false, permission: 'onepipe:read' }, () => 1)).toThrow(expect.objectContaining({ code: 'INVALID_ROUTE' }))
  })

  it('a public route ignores bad credentials; a guarded one answers them', async () => {
    const api = REST.create('pub')
      .auth(auth)
      .get('/open', { auth: false }, (ctx) => ({ user: ctx.user?.id ?? null }))
      .get('/closed', (ctx) => ({ user: ctx.user?.id }))
      .build()
    expect(await (await api.request('/open', { headers: bearer('garbage') })).json()).toEqual({ user: null })
    const res = await api.request('/closed', { headers: bearer('garbage') })
    await refused(res.clone(), 401, 'TOKEN_INVALID')
    expect(res.headers.get('www-authenticate')).toBe('Bearer')
    const { user, s } = await login()
    expect(await (await api.request('/open', { headers: bearer(s.accessToken) })).json()).toEqual({ user: user.id })
  })

  it('the existing helpers still work: Auth.bearer and Auth.apiKey', async () => {
    const api = REST.create('old')
      .auth(Auth.bearer((t) => (t === 'ops' ? { id: 'ops', roles: ['operator'] } : null)))
      .get('/v', { roles: ['viewer'] }, (ctx) => ({ id: ctx.user?.id }))
      .post('/w', { permission: 'onepipe:admin' }, () => ({}))
      .build()
    expect(await (await api.request('/v', { headers: bearer('ops') })).json()).toEqual({ id: 'ops' })
    expect((await api.request('/w', { method: 'POST', headers: bearer('ops') })).status).toBe(403)
    const fixed = REST.create('fixed').auth(Auth.apiKey('k-123', { id: 'svc' })).get('/', (ctx) => ({ id: ctx.user?.id })).build()
    expect(await (await fixed.request('/', { headers: { 'x-api-key': 'k-123' } })).json()).toEqual({ id: 'svc' })
  })
})
