// Revocation reaches every instance at once: a logout, a disabled account,
// lowered roles or a disabled key in one instance stop the credentials in
// the others within moments (a NOTIFY), not at the access token's expiry,
// while an unchanged session is checked from memory.
import { fileURLToPath } from 'node:url'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Auth, Database, REST, type AuthCaller } from '@onepipe/sdk'
import { spawnNode, testDatabase, waitFor, type NodeProcess } from '@onepipe/testing'
import { PASSWORD, SECRET } from './helpers.js'

const fixture = fileURLToPath(new URL('./fixtures/instance.mjs', import.meta.url))
let db: Database
let other: Database
let cleanup: () => Promise<void>
let a: Auth
let b: Auth
let child: NodeProcess
let port = 0
let n = 0

const viaChild = async (token: string) => (await fetch(`http://127.0.0.1:${port}/api/orders`, { headers: { authorization: `Bearer ${token}` } })).status
const viaB = async (token: string): Promise<AuthCaller | string> => b.verifyAccessToken(token).catch((e: { code: string }) => e.code)

async function session(roles = ['viewer']) {
  const email = `m${++n}-${Date.now()}@example.com`
  const u = await a.users.create({ email, password: PASSWORD, roles })
  return { user: u, s: await a.login(email, PASSWORD, { address: `192.0.2.${n}` }) }
}

/** How long `check` takes to turn true, in ms (fails past 3 s: that would be no better than polling). */
async function within(check: () => Promise<boolean>): Promise<number> {
  const t0 = performance.now()
  await waitFor(check, { timeoutMs: 3000, intervalMs: 5, what: 'the revocation to reach the other instance' })
  return performance.now() - t0
}

beforeAll(async () => {
  let schema: string
  let url: string | undefined
  ;({ db, schema, url, cleanup } = await testDatabase())
  // Another pool on the same schema: its own connections and its own LISTEN.
  other = Database.create('other').postgres(url!).schema(schema).build()
  a = Auth.create('main').db(db).secret(SECRET).build()
  b = Auth.create('main').db(other).secret(SECRET).build()
  await a.ready()
  await b.ready()
  child = spawnNode(fixture, [], { DATABASE_URL: url, SCHEMA: schema, SECRET })
  port = Number((await child.waitFor(/PORT=\d+/)).slice(5))
})

afterAll(async () => {
  child.kill('SIGTERM')
  await child.exited
  await a.close()
  await b.close()
  await other.close()
  await cleanup()
})

describe('revocation across instances', () => {
  it('a logout in one instance stops the access token in another object and another process at once', async () => {
    const { s } = await session()
    expect(await viaChild(s.accessToken)).toBe(200)
    expect(await viaB(s.accessToken)).toMatchObject({ id: s.user.id })
    // Warm: the other instances now answer this session from memory.
    expect(await viaChild(s.accessToken)).toBe(200)
    await a.logout({ sessionId: s.sessionId })
    // The instance that logged out refuses on the spot.
    await expect(a.verifyAccessToken(s.accessToken)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' })
    const inB = await within(async () => (await viaB(s.accessToken)) === 'TOKEN_REVOKED')
    const inChild = await within(async () => (await viaChild(s.accessToken)) === 401)
    // A NOTIFY takes milliseconds; the access token itself would have lived 15 minutes.
    expect(inB).toBeLessThan(1000)
    expect(inChild).toBeLessThan(1000)
  })

  it('disabling an account in another instance, and lowering its roles', async () => {
    const { user, s } = await session(['operator'])
    expect(await viaB(s.accessToken)).toMatchObject({ roles: ['operator'] })
    await a.users.setRoles(user.id, [])
    await within(async () => {
      const u = await viaB(s.accessToken)
      return typeof u === 'object' && u.roles.length === 0
    })
    expect(await viaChild(s.accessToken)).toBe(403)
    await b.users.disable(user.id)
    await within(async () => (await a.verifyAccessToken(s.accessToken).catch((e: { code: string }) => e.code)) === 'ACCOUNT_DISABLED')
    await within(async () => (await viaChild(s.accessToken)) === 401)
  })

  it('a refresh token reused in one instance kills the session in the others', async () => {
    const { s } = await session()
    const next = await b.refresh(s.refreshToken)
    expect(await viaChild(next.accessToken)).toBe(200)
    // Spent and past the reuse interval: simulate the wait by moving its use back.
    await db.execute("UPDATE _onepipe_auth_refresh_tokens SET used_at = used_at - interval '1 minute' WHERE session_id = $1 AND used_at IS NOT NULL", [s.sessionId])
    await expect(a.refresh(s.refreshToken)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' })
    await within(async () => (await viaChild(next.accessToken)) === 401)
    await within(async () => (await viaB(next.accessToken)) === 'TOKEN_REVOKED')
  })

  it('a disabled API key stops in every instance', async () => {
    const app1 = await a.applications.create({ name: 'worker' })
    const { key, apiKey } = await a.apiKeys.create(app1.id, { name: 'k', roles: ['viewer'] })
    const api = REST.create('keys').auth(b).get('/x', { roles: ['viewer'] }, () => ({ ok: true })).build()
    const web = new Hono().route('/', api.app)
    expect((await web.request('/x', { headers: { 'x-api-key': key } })).status).toBe(200)
    await a.apiKeys.disable(apiKey.id)
    await within(async () => (await web.request('/x', { headers: { 'x-api-key': key } })).status === 401)
  })

  it('an unchanged session costs the other instance no query', async () => {
    const { s } = await session()
    await b.verifyAccessToken(s.accessToken)
    // With its pool closed, the other instance can still check the session: from memory.
    await other.close()
    for (let i = 0; i < 50; i++) expect(await b.verifyAccessToken(s.accessToken)).toMatchObject({ id: s.user.id, roles: ['viewer'] })
  })
})
