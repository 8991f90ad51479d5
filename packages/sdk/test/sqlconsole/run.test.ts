// runReadOnlyQuery on the test backend: refused queries change nothing,
// accepted ones read the right rows, the schema scoping dies with the
// transaction, and a slow query ends with a typed error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runReadOnlyQuery, OnePipeError, ValidationError, type Database } from '@onepipe/sdk'
import { testBackend, testDatabase, uniqueName } from '@onepipe/testing'

let db: Database
let schema: string
const other = uniqueName('sqlb')
let cleanup: () => Promise<void>
// One connection, so the follow-up queries run on the very connection the console used.
beforeAll(async () => {
  ;({ db, schema, cleanup } = await testDatabase({ max: 1 }))
  await db.execute('CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL)')
  await db.execute(`INSERT INTO t VALUES (1, 'alpha'), (2, 'x; DROP TABLE t'), (3, 'gamma')`)
  await db.execute(`CREATE SCHEMA "${other}"`)
  await db.execute(`CREATE TABLE "${other}".t (id int PRIMARY KEY, name text NOT NULL)`)
  await db.execute(`INSERT INTO "${other}".t VALUES (10, 'other-only')`)
  await db.execute(`CREATE SEQUENCE s`)
  // A function of the app's that writes: the read-only transaction must stop it.
  await db.execute(`CREATE FUNCTION sneaky_write() RETURNS int LANGUAGE sql AS $$ INSERT INTO t VALUES (99, 'sneaky') RETURNING 1 $$`)
})
afterAll(async () => {
  await db.execute(`DROP SCHEMA IF EXISTS "${other}" CASCADE`)
  await cleanup()
})

const count = async (): Promise<number> => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM t'))[0]!.n
const searchPath = async (): Promise<string> => (await db.query<{ search_path: string }>('SHOW search_path'))[0]!.search_path

async function failure(sql: string, options: Parameters<typeof runReadOnlyQuery>[2] = {}): Promise<OnePipeError> {
  const e = await runReadOnlyQuery(db, sql, options).then(
    () => undefined,
    (x: unknown) => x,
  )
  expect(e, `expected "${sql.slice(0, 80)}" to fail`).toBeInstanceOf(OnePipeError)
  return e as OnePipeError
}

describe('refused before anything runs, and nothing changed', () => {
  it.each([
    'SELECT 1; DROP TABLE t',
    'WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d',
    'COPY t TO STDOUT',
    'SELECT pg_sleep(100)',
    "SELECT pg_read_file('/etc/passwd')",
    'SELECT PG_CATALOG.PG_SLEEP(1)',
    'SELECT 1 /* hidden */; DELETE FROM t',
    'SELECT 1 -- c\n; DELETE FROM t',
    "SELECT set_config('search_path', 'other', false)",
    'SELECT * FROM t FOR UPDATE',
    'SELECT * INTO t2 FROM t',
    'INSERT INTO t VALUES (1)',
    "SELECT nextval('s')",
    'SELECT 1) AS q; DELETE FROM t; SELECT (1',
    '',
    `SELECT '${'x'.repeat(70 * 1024)}'`,
  ])('%.60s', async (sql) => {
    const before = await count()
    const path = await searchPath()
    const e = await failure(sql)
    expect(e).toBeInstanceOf(ValidationError)
    expect(e).toMatchObject({ code: 'VALIDATION_FAILED', status: 400 })
    expect(await count()).toBe(before)
    expect(await searchPath()).toBe(path)
    expect((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = $1 AND tablename = 't2'`, [schema]))[0]!.n).toBe(0)
  })

  it('a function of the app that writes is stopped by the read-only transaction (403 QUERY_READ_ONLY)', async () => {
    const before = await count()
    const e = await failure('SELECT sneaky_write()')
    expect(e).toMatchObject({ code: 'QUERY_READ_ONLY', status: 403 })
    expect(await count()).toBe(before)
  })
})

describe('accepted', () => {
  it('reads string literals holding ; and -- as text', async () => {
    expect(await runReadOnlyQuery(db, "SELECT 'a;b' AS s")).toMatchObject({ columns: [{ name: 's', type: 'text' }], rows: [['a;b']], truncated: false })
    expect((await runReadOnlyQuery(db, "SELECT '--x' AS s")).rows).toEqual([['--x']])
  })

  it('returns the right rows for a WHERE on a string holding ; DROP TABLE', async () => {
    const r = await runReadOnlyQuery(db, "SELECT * FROM t WHERE name = 'x; DROP TABLE t'")
    expect(r.columns).toEqual([{ name: 'id', type: 'integer' }, { name: 'name', type: 'text' }])
    expect(r.rows).toEqual([[2, 'x; DROP TABLE t']])
    expect(await count()).toBe(3)
  })

  it('runs a CTE, a UNION and VALUES', async () => {
    expect((await runReadOnlyQuery(db, 'WITH x AS (SELECT 1 AS n) SELECT n FROM x')).rows).toEqual([[1]])
    expect((await runReadOnlyQuery(db, 'SELECT id FROM t WHERE id = 1 UNION SELECT 7 ORDER BY 1')).rows).toEqual([[1], [7]])
    expect((await runReadOnlyQuery(db, 'VALUES (1, 2)')).columns.map((c) => c.name)).toEqual(['column1', 'column2'])
  })

  it('keeps every column, in order, when two share a name, and answers plain JSON values', async () => {
    const r = await runReadOnlyQuery(db, "SELECT 1, 2, '\\x01ff'::bytea AS b, 'NaN'::float8 AS f, 1.50::numeric AS n, '{\"a\":[1]}'::jsonb AS j -- trailing comment")
    expect(r.columns.map((c) => c.name)).toEqual(['?column?', '?column?', 'b', 'f', 'n', 'j'])
    expect(r.columns.map((c) => c.type)).toEqual(['integer', 'integer', 'bytea', 'double precision', 'numeric', 'jsonb'])
    expect(r.rows).toEqual([[1, 2, '\\x01ff', 'NaN', '1.50', { a: [1] }]])
  })

  it('answers the columns of an empty result', async () => {
    expect(await runReadOnlyQuery(db, 'SELECT id, name FROM t WHERE false')).toMatchObject({ columns: [{ name: 'id' }, { name: 'name' }], rows: [], truncated: false })
  })

  it('truncates at maxRows and says so', async () => {
    const r = await runReadOnlyQuery(db, 'SELECT g FROM generate_series(1, 50) AS g', { maxRows: 10 })
    expect(r.rows).toHaveLength(10)
    expect(r.rows[9]).toEqual([10])
    expect(r.truncated).toBe(true)
    expect((await runReadOnlyQuery(db, 'SELECT g FROM generate_series(1, 10) AS g', { maxRows: 10 })).truncated).toBe(false)
    expect(typeof r.ms).toBe('number')
  })

  it('reports an error of the query as QUERY_FAILED with the position in the caller\'s SQL', async () => {
    const e = await failure('/* x */ SELECT nope FROM t')
    expect(e).toMatchObject({ code: 'QUERY_FAILED', status: 400, details: { sqlState: '42703', position: 16 } })
    expect(e.message).toMatch(/column "nope" does not exist/)
    expect(await failure('SELECT 1 / 0')).toMatchObject({ code: 'QUERY_FAILED', details: { sqlState: '22012' } })
  })

  it('refuses options out of range', async () => {
    expect(await failure('SELECT 1', { maxRows: 0 })).toMatchObject({ code: 'VALIDATION_FAILED' })
    expect(await failure('SELECT 1', { maxRows: 10_001 })).toMatchObject({ code: 'VALIDATION_FAILED' })
    expect(await failure('SELECT 1', { timeoutMs: 1.5 })).toMatchObject({ code: 'VALIDATION_FAILED' })
    expect(await failure('SELECT 1', { schema: 'bad name' })).toMatchObject({ code: 'INVALID_IDENTIFIER' })
  })
})

describe('the wrapping cannot be escaped', () => {
  it('a connection with standard_conforming_strings off cannot end a literal early at a backslash', async () => {
    // Read as standard SQL (as the parser does), this is one SELECT of two strings; read with
    // backslash escapes, the first string would run on past the quote and the rest would close the wrapper.
    const tricky = "SELECT 'a\\' AS s, ') AS q; DELETE FROM t; --' AS u"
    await db.execute('SET standard_conforming_strings = off')
    try {
      const r = await runReadOnlyQuery(db, tricky)
      expect(r.rows).toEqual([['a\\', ') AS q; DELETE FROM t; --']])
    } finally {
      await db.execute('SET standard_conforming_strings = on')
    }
    expect(await count()).toBe(3)
  })
})

describe('schema scoping', () => {
  it('sees only the given schema\'s t, and the connection keeps its own search_path afterwards', async () => {
    const path = await searchPath()
    expect((await runReadOnlyQuery(db, 'SELECT id, name FROM t ORDER BY id', { schema })).rows).toEqual([[1, 'alpha'], [2, 'x; DROP TABLE t'], [3, 'gamma']])
    expect(await searchPath()).toBe(path)
    expect((await runReadOnlyQuery(db, 'SELECT id, name FROM t ORDER BY id', { schema: other })).rows).toEqual([[10, 'other-only']])
    // The follow-up on the same (only) connection still resolves t in the app's schema.
    expect(await searchPath()).toBe(path)
    expect(await count()).toBe(3)
    expect((await runReadOnlyQuery(db, "SELECT current_setting('search_path') AS p", { schema: other })).rows[0]![0]).toMatch(other)
    expect(await searchPath()).toBe(path)
  })

  it('defaults to the Database\'s own schema', async () => {
    expect((await runReadOnlyQuery(db, 'SELECT count(*)::int AS n FROM t')).rows).toEqual([[3]])
  })

  it('a failed query leaves the search_path as it was too', async () => {
    const path = await searchPath()
    await failure('SELECT nope FROM t', { schema: other })
    expect(await searchPath()).toBe(path)
    expect(await count()).toBe(3)
  })
})

describe('a slow query', () => {
  const slow = 'SELECT count(*) FROM generate_series(1, 100000) AS a, generate_series(1, 100000) AS b'
  it('ends at the timeout with a typed error (refused up front on the embedded engine, which cannot stop a running query)', async () => {
    const t0 = Date.now()
    const e = await failure(slow, { timeoutMs: 300 })
    if (testBackend() === 'real') {
      expect(e).toMatchObject({ code: 'QUERY_TIMEOUT', status: 400, retryable: false, details: { timeoutMs: 300 } })
    } else {
      expect(e).toMatchObject({ code: 'QUERY_TOO_EXPENSIVE', status: 400, retryable: false, details: { timeoutMs: 300, budget: 6000 } })
    }
    expect(Date.now() - t0).toBeLessThan(10_000)
    // The connection is usable and unchanged afterwards.
    expect(await count()).toBe(3)
    expect((await runReadOnlyQuery(db, 'SELECT 1 AS one')).rows).toEqual([[1]])
  })

  it('a query within the budget runs on either engine', async () => {
    const r = await runReadOnlyQuery(db, 'SELECT count(*)::int AS n FROM generate_series(1, 100) AS a, generate_series(1, 100) AS b', { timeoutMs: 5000 })
    expect(r.rows).toEqual([[10_000]])
  })
})

it('answers int8 the same on every backend: a number when exact, else its digits, never rounded', async () => {
  const r = await runReadOnlyQuery(db, 'SELECT 9007199254740993::int8 AS big, 5::int8 AS small, -9007199254740993::int8 AS neg, NULL::int8 AS none')
  expect(r.rows).toEqual([['9007199254740993', 5, '-9007199254740993', null]])
  expect(r.columns.map((c) => c.type)).toEqual(['bigint', 'bigint', 'bigint', 'bigint'])
})
