import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { assertDatabase, Database, DatabaseError, TransportError, ConfigError, getManifest } from '@onepipe/core'
import { testDatabase, waitFor } from '@onepipe/testing'

describe('Database', () => {
  let db: Database
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ db, cleanup } = await testDatabase())
    await db.execute('CREATE TABLE items (id int8 PRIMARY KEY, name text NOT NULL, data jsonb, at timestamptz DEFAULT now(), price numeric)')
  })
  afterAll(() => cleanup())

  it('returns the same types on PostgreSQL and PGlite', async () => {
    await db.execute('INSERT INTO items (id, name, data, price) VALUES ($1, $2, $3, $4)', [1, 'a', { x: [1, 2] }, '9.50'])
    const [row] = await db.query<{ id: number; name: string; data: unknown; at: Date; price: string }>('SELECT * FROM items WHERE id = $1', [1])
    expect(row?.id).toBe(1)
    expect(row?.data).toEqual({ x: [1, 2] })
    expect(row?.at).toBeInstanceOf(Date)
    expect(row?.price).toBe('9.50')
  })

  it('execute returns the number of changed rows', async () => {
    await db.execute('INSERT INTO items (id, name) VALUES (2, $1), (3, $1)', ['b'])
    expect(await db.execute('UPDATE items SET name = $1 WHERE name = $2', ['c', 'b'])).toBe(2)
  })

  it('rolls a failed transaction back', async () => {
    await expect(
      db.transaction(async (tx) => {
        await tx.execute('INSERT INTO items (id, name) VALUES (10, $1)', ['x'])
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(await db.query('SELECT 1 FROM items WHERE id = 10')).toEqual([])
  })

  it('maps a constraint violation to DatabaseError with its SQLSTATE', async () => {
    const err = await db.execute('INSERT INTO items (id, name) VALUES (1, $1)', ['dup']).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DatabaseError)
    expect((err as DatabaseError).sqlState).toBe('23505')
    expect((err as DatabaseError).retryable).toBe(false)
  })

  it('delivers NOTIFY to a listener in the same schema', async () => {
    const got: string[] = []
    const stop = await db.listen('ping', (p) => got.push(p))
    await db.notify('ping', 'hello')
    await waitFor(() => got.length > 0, { what: 'the notification' })
    await stop()
    expect(got).toEqual(['hello'])
  })

  it('keeps every OnePipe table in its schema and records migrations in the ledger', async () => {
    const rows = await db.query<{ source: string; id: number }>('SELECT source, id FROM _onepipe_migrations ORDER BY id')
    expect(rows.length).toBeGreaterThan(0)
    expect(rows.every((r) => r.source === 'onepipe')).toBe(true)
    const [t] = await db.query<{ n: number }>("SELECT count(*)::int8 AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name = '_onepipe_instances'", [db.schema])
    expect(t?.n).toBe(1)
  })

  it('registers itself in the manifest', () => {
    expect(getManifest().primitives.some((p) => p.primitive === 'database' && p.name === 'test')).toBe(true)
  })
})

describe('Database configuration errors', () => {
  it('rejects an invalid schema name before connecting', () => {
    expect(() => Database.create('x').schema('a;drop')).toThrow(ConfigError)
  })
  it('a builder given no Database fails at build time, naming the primitive', () => {
    expect(() => assertDatabase(undefined, 'Flow "orders"')).toThrow(/Flow "orders"\.db\(\) needs a Database \(got undefined\)/)
  })
  it('rejects a non-postgres URL', () => {
    expect(() => Database.create('x').postgres('mysql://u:secret@h/db')).toThrow(/postgres:\/\//)
    expect(() => Database.create('x').postgres('mysql://u:secret@h/db')).not.toThrow(/secret/)
  })
  it('fails with TransportError when PostgreSQL is unreachable', async () => {
    const db = Database.create('down').postgres('postgres://postgres@127.0.0.1:1/postgres').build()
    const err = await db.query('SELECT 1').catch((e: unknown) => e)
    await db.close()
    expect(err).toBeInstanceOf(TransportError)
    expect((err as TransportError).code).toBe('DB_UNAVAILABLE')
  })
})
