import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, Database, DatabaseError } from '@onepipe/core'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { postgresUrl, testBackend, uniqueName } from '@onepipe/testing'

// A small app keeps its tables beside its code with .migration(): the same
// ledger, numbering and append-only rule as migration files.
const dirs = new Map<string, string>()
afterAll(() => {
  for (const d of dirs.values()) rmSync(d, { recursive: true, force: true })
})
/** A database for `schema` that a later process (a later Database) can reopen: a folder on the embedded default. */
function fresh(schema: string): ReturnType<typeof Database.create> {
  const b = Database.create('inline').schema(schema)
  if (testBackend() === 'real') return b.postgres(postgresUrl())
  if (!dirs.has(schema)) dirs.set(schema, mkdtempSync(join(tmpdir(), 'onepipe-mig-')))
  return b.pglite(dirs.get(schema))
}

describe('Database.migration()', () => {
  const schema = uniqueName('mig')
  const opened: Database[] = []
  afterAll(async () => {
    if (testBackend() === 'real') {
      const admin = Database.create('admin').postgres(postgresUrl()).autoMigrate(false).build()
      await admin.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await admin.close()
    }
    for (const db of opened) await db.close()
  })

  it('applies inline migrations once, after OnePipe own, recorded under their source', async () => {
    const db = fresh(schema).migration('000001_orders', 'CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL)').build()
    opened.push(db)
    const r = await db.ready()
    expect(r.applied).toContain('app:1')
    expect(r.applied.indexOf('app:1')).toBe(r.applied.length - 1)
    await db.execute('INSERT INTO orders (customer) VALUES ($1)', ['ada'])
    const ledger = await db.query<{ source: string; id: number; name: string }>("SELECT source, id, name FROM _onepipe_migrations WHERE source = 'app'")
    expect(ledger).toEqual([{ source: 'app', id: 1, name: 'orders' }])
    // The embedded folder belongs to one process at a time: let the next one open it.
    await db.close()
    // A later start (here: a second Database) finds it applied and adds the next one.
    const again = fresh(schema)
      .migration('000001_orders', 'CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL)')
      .migration('000002_notes', 'ALTER TABLE orders ADD COLUMN note text')
      .build()
    opened.push(again)
    const r2 = await again.ready()
    expect(r2.applied).toEqual(['app:2'])
    expect(r2.alreadyApplied).toContain('app:1')
    expect(await again.query('SELECT customer, note FROM orders')).toEqual([{ customer: 'ada', note: null }])
    await again.close()
  })

  it('refuses an applied migration whose SQL changed', async () => {
    const changed = fresh(schema).migration('000001_orders', 'CREATE TABLE orders (id bigserial PRIMARY KEY)').build()
    opened.push(changed)
    await expect(changed.ready()).rejects.toMatchObject({ code: 'MIGRATION_CHANGED' })
  })

  it('refuses bad names and reused numbers at build time', () => {
    expect(() => Database.create('x').migration('orders', 'SELECT 1')).toThrow(ConfigError)
    expect(() => Database.create('x').migration('1_orders', 'SELECT 1')).toThrow(/six digits/)
    expect(() => Database.create('x').migration('000001_a', '  ')).toThrow(/no SQL/)
    expect(() => Database.create('x').migration('000001_a', 'SELECT 1').migration('000001_b', 'SELECT 1')).toThrow(/numbered 1/)
    expect(() => Database.create('x').migration('000001_a', 'SELECT 1', 'onepipe')).toThrow(/reserved/)
  })

  it('a failing migration leaves nothing behind and says which one failed', async () => {
    const s = uniqueName('mig')
    const db = fresh(s).migration('000001_ok', 'CREATE TABLE ok (id int)').migration('000002_bad', 'CREATE TABLE nope (id int REFERENCES missing(id))').build()
    opened.push(db)
    const err = await db.ready().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DatabaseError)
    expect((err as DatabaseError).message).toMatch(/^Migration app:2 \(bad\) failed: /)
    await db.close()
    // Nothing of the failed batch stayed, not even OnePipe's own tables that came before it.
    const look = fresh(s).autoMigrate(false).build()
    const t = await look.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [s])
    if (testBackend() === 'real') await look.execute(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)
    await look.close()
    expect(t).toEqual([])
  })
})

describe('database errors a client caused', () => {
  const schema = uniqueName('dbe')
  let db: Database
  afterAll(async () => {
    if (testBackend() === 'real') await db.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await db.close()
  })

  it('a value the column cannot hold is a 400 DB_INVALID_VALUE, a broken constraint a 409, neither retryable', async () => {
    db = fresh(schema).migration('000001_t', 'CREATE TABLE t (id int PRIMARY KEY, name text, n int)').build()
    await db.ready()
    const nul = await db.execute('INSERT INTO t (id, name) VALUES (1, $1)', ['a\u0000b']).catch((e: unknown) => e)
    expect(nul).toMatchObject({ code: 'DB_INVALID_VALUE', status: 400, retryable: false })
    const big = await db.execute('INSERT INTO t (id, n) VALUES (2, $1)', [2 ** 40]).catch((e: unknown) => e)
    expect(big).toMatchObject({ code: 'DB_INVALID_VALUE', status: 400, retryable: false })
    await db.execute('INSERT INTO t (id) VALUES (3)')
    const dup = await db.execute('INSERT INTO t (id) VALUES (3)').catch((e: unknown) => e)
    expect(dup).toMatchObject({ code: 'DB_CONSTRAINT', status: 409, retryable: false, sqlState: '23505' })
    const syntax = await db.execute('SELEC 1').catch((e: unknown) => e)
    expect(syntax).toMatchObject({ code: 'DB_ERROR', status: 500, retryable: false })
    expect(await db.query('SELECT id FROM t')).toEqual([{ id: 3 }])
  })
})
