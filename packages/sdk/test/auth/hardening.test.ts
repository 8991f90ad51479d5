// Regressions found by a security review of Auth: each case was an attack that
// got through (or an answer that said too much) before its fix. Runs on the
// backend of the run: PostgreSQL + Redis, or PGlite + memory with
// ONEPIPE_TEST_BACKEND=embedded. Imports the sources, so it tests the code as it
// is, not the last build.
import { SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Cache, Database } from '@onepipe/sdk'
import { testCache, testDatabase } from '@onepipe/testing'
import { Auth } from '../../src/auth/auth.js'
import { accountKey } from '../../src/auth/throttle.js'
import { PASSWORD, SECRET } from './helpers.js'

let db: Database
let cache: Cache
let auth: Auth
const cleanups: (() => Promise<void>)[] = []

beforeAll(async () => {
  const d = await testDatabase()
  const c = await testCache()
  db = d.db
  cache = c.cache
  cleanups.push(c.cleanup, d.cleanup)
  auth = Auth.create('hardening').db(db).cache(cache).secret(SECRET).build()
  await auth.ready()
})

afterAll(async () => {
  await auth.close()
  for (const c of cleanups) await c()
})

const addr = () => `198.51.100.${Math.floor(Math.random() * 250) + 1}`
const codeOf = (p: Promise<unknown>) => p.then(() => 'OK', (e: unknown) => (e as { code?: string }).code)

describe('login throttling per account', () => {
  it('spellings the database takes for one account share its count (İ is i to PostgreSQL, not to toLowerCase)', async () => {
    // PostgreSQL's lower() and the key must agree: every spelling the login's
    // lower(email) = lower($1) matches gets the same throttle key.
    for (const [a, b] of [
      ['admİn@example.com', 'ADMIN@example.com'],
      ['ΟΔΥΣΣΕΥΣ@example.com', 'οδυσσευσ@example.com'],
    ] as const) {
      const [row] = await db.query<{ same: boolean }>('SELECT lower($1) = lower($2) AS same', [a, b])
      if (row?.same) expect(accountKey(a)).toBe(accountKey(b))
    }
    const email = `ivi-${Date.now()}@example.com`
    await auth.users.create({ email, password: PASSWORD, roles: [] })
    // Ten wrong guesses, each from another address so only the account's count can stop the next.
    for (let i = 0; i < 10; i++) expect(await codeOf(auth.login(email, 'wrong password, guess ' + String(i), { address: addr() }))).toBe('INVALID_CREDENTIALS')
    // The same account spelt with U+0130 (found by the database's lower()) was a fresh count of its own: 10 more guesses per "i".
    const variant = email.replace(/i/g, 'İ')
    const [found] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM _onepipe_auth_users WHERE lower(email) = lower($1)', [variant])
    expect(found?.n).toBe(1)
    expect(await codeOf(auth.login(variant, PASSWORD, { address: addr() }))).toBe('TOO_MANY_ATTEMPTS')
    expect(await codeOf(auth.login(email.toUpperCase(), PASSWORD, { address: addr() }))).toBe('TOO_MANY_ATTEMPTS')
  })
})

describe('access tokens', () => {
  it('a token signed with the key whose sid is not a session id is TOKEN_REVOKED, not a database error', async () => {
    const token = await new SignJWT({ sid: "not-a-uuid'", roles: ['admin'] })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
      .setIssuer('onepipe')
      .setAudience('onepipe')
      .setSubject('00000000-0000-4000-8000-000000000000')
      .setJti('j')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(SECRET))
    expect(await codeOf(auth.verifyAccessToken(token))).toBe('TOKEN_REVOKED')
  })
})
