// The development admin: on the embedded default, outside production, with no
// account and no ONEPIPE_ADMIN_* set, Auth makes admin@localhost with a random
// password kept in .onepipe/dev-admin.txt (owner-only), so a newcomer can log
// in to the dashboard; never on PostgreSQL, never in production, never twice.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { Auth, Database, DEV_ADMIN_EMAIL, devAdminFile } from '@onepipe/sdk'
import { testDatabase } from '@onepipe/testing'

const SECRET = 'dev-admin-test-secret-0123456789-abcdef'
const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const old = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  for (const [k, v] of Object.entries(vars)) if (v === undefined) delete process.env[k]
  else process.env[k] = v
  try {
    return await fn()
  } finally {
    for (const [k, v] of Object.entries(old)) if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
}

const noAdminEnv = { ONEPIPE_ADMIN_EMAIL: undefined, ONEPIPE_ADMIN_PASSWORD: undefined }

it('on an embedded folder: made once, its password in an owner-only file beside the database, and it logs in as admin', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'onepipe-devadmin-'))
  dirs.push(dir)
  const open = () => Database.create('dev').pglite(join(dir, 'db')).build()
  let db = open()
  const file = devAdminFile(db)!
  expect(file).toBe(join(dir, 'dev-admin.txt'))
  await withEnv({ ...noAdminEnv, NODE_ENV: 'development' }, async () => {
    const auth = Auth.create('dev').db(db).secret(SECRET).build()
    await auth.ready()
    const [email, password] = readFileSync(file, 'utf8').trim().split('\n')
    expect(email).toBe(DEV_ADMIN_EMAIL)
    expect(password!.length).toBeGreaterThanOrEqual(20)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect((await auth.login(DEV_ADMIN_EMAIL, password!)).user.roles).toEqual(['admin'])
    await auth.close()
    await db.close()
    // A restart keeps the account and the file as they are.
    db = open()
    const again = Auth.create('dev').db(db).secret(SECRET).build()
    await again.ready()
    expect(readFileSync(file, 'utf8').trim().split('\n')[1]).toBe(password)
    expect((await again.users.list()).length).toBe(1)
    await again.close()
    await db.close()
  })
})

it('never in production, never on PostgreSQL or in memory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'onepipe-devadmin-'))
  dirs.push(dir)
  const db = Database.create('prod').pglite(join(dir, 'db')).build()
  await withEnv({ ...noAdminEnv, NODE_ENV: 'production' }, async () => {
    const auth = Auth.create('prod').db(db).secret(SECRET).build()
    await auth.ready()
    expect(await auth.users.list()).toEqual([])
    await auth.close()
  })
  await db.close()
  expect(() => readFileSync(join(dir, 'dev-admin.txt'))).toThrow()
  expect(devAdminFile(Database.create('mem').pglite('memory://').build())).toBeUndefined()
  const t = await testDatabase()
  try {
    if (t.db.kind === 'postgres') expect(devAdminFile(t.db)).toBeUndefined()
  } finally {
    await t.cleanup()
  }
})
