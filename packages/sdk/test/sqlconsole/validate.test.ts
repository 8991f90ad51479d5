// validateSqlQuery: PostgreSQL's own parser decides what one SELECT is, so a
// `;` inside a string is text and a statement after a comment is a second one.
import { describe, expect, it } from 'vitest'
import { validateSqlQuery, ValidationError } from '@onepipe/sdk'

async function refusal(sql: string): Promise<{ message: string; position?: number; function?: string }> {
  const e = await validateSqlQuery(sql).then(
    () => undefined,
    (x: unknown) => x,
  )
  expect(e, `expected "${sql.slice(0, 80)}" to be refused`).toBeInstanceOf(ValidationError)
  const v = e as ValidationError
  expect(v.code).toBe('VALIDATION_FAILED')
  expect(v.status).toBe(400)
  expect(v.issues).toHaveLength(1)
  expect(v.issues[0]!.path).toBe('sql')
  return v.issues[0] as { message: string; position?: number; function?: string }
}

describe('accepted', () => {
  it.each([
    "SELECT 'a;b' AS s",
    "SELECT '--x' AS s",
    "SELECT '/* x */; DELETE FROM t' AS s",
    'SELECT $$ ; DROP TABLE t; $$ AS s',
    'WITH x AS (SELECT 1 AS n) SELECT n FROM x',
    'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r',
    'SELECT 1 UNION SELECT 2',
    'SELECT 1 INTERSECT SELECT 1 EXCEPT SELECT 2',
    'VALUES (1, 2), (3, 4)',
    'TABLE t',
    'SELECT 1;',
    '/* leading */ SELECT 1 -- trailing',
    "SELECT current_setting('search_path')",
    'SELECT txid_current_if_assigned(), pg_current_xact_id_if_assigned()',
    'SELECT lower(name), "upper"(name) FROM t',
  ])('%s', async (sql) => {
    await expect(validateSqlQuery(sql)).resolves.toEqual({ statement: 'select' })
  })
})

describe('refused', () => {
  it.each<[string, RegExp]>([
    ['SELECT 1; DROP TABLE t', /only one statement is allowed, found 2 \(SELECT, DROP\)/],
    ['SELECT 1 /* hidden */; DELETE FROM t', /only one statement.*SELECT, DELETE/],
    ['SELECT 1 -- c\n; DELETE FROM t', /only one statement.*SELECT, DELETE/],
    ['WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', /data-modifying CTE \(DELETE\)/],
    ['WITH d AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM d', /data-modifying CTE \(INSERT\)/],
    ['WITH d AS (UPDATE t SET id = 2 RETURNING *) SELECT * FROM d', /data-modifying CTE \(UPDATE\)/],
    ['SELECT * FROM (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) AS x', /data-modifying CTE \(DELETE\)/],
    ['COPY t TO STDOUT', /^COPY is not allowed/],
    ['INSERT INTO t VALUES (1)', /^INSERT is not allowed: the console only reads/],
    ['EXPLAIN ANALYZE SELECT 1', /^EXPLAIN is not allowed/],
    ['SET search_path TO other', /^SET is not allowed/],
    ['SELECT * FROM t FOR UPDATE', /FOR UPDATE \/ FOR SHARE/],
    ['SELECT * FROM (SELECT * FROM t FOR SHARE) AS x', /FOR UPDATE \/ FOR SHARE/],
    ['SELECT * INTO t2 FROM t', /SELECT … INTO/],
    ['SELECT pg_sleep(100)', /^function pg_sleep is not allowed$/],
    ['SELECT PG_CATALOG.PG_SLEEP(1)', /^function pg_sleep is not allowed$/],
    ['SELECT "pg_sleep"(1)', /^function pg_sleep is not allowed$/],
    ['SELECT * FROM pg_sleep(1)', /^function pg_sleep is not allowed$/],
    ['SELECT 1 WHERE EXISTS (SELECT pg_sleep_for(\'1s\'))', /function pg_sleep_for/],
    ["SELECT pg_read_file('/etc/passwd')", /^function pg_read_file is not allowed$/],
    ["SELECT pg_catalog.pg_ls_dir('.')", /function pg_ls_dir/],
    ["SELECT set_config('search_path', 'other', false)", /^function set_config is not allowed$/],
    ['SELECT pg_advisory_lock(1)', /function pg_advisory_lock/],
    ['SELECT pg_try_advisory_xact_lock(1)', /function pg_try_advisory_xact_lock/],
    ["SELECT nextval('s')", /function nextval/],
    ["SELECT setval('s', 1)", /function setval/],
    ['SELECT pg_terminate_backend(1)', /function pg_terminate_backend/],
    ["SELECT dblink_exec('x', 'DELETE FROM t')", /function dblink_exec/],
    ["SELECT lo_import('/etc/passwd')", /function lo_import/],
    ["SELECT query_to_xml('DELETE FROM t', true, false, '')", /function query_to_xml/],
    ['SELECT count(*) FILTER (WHERE pg_reload_conf()) FROM t', /function pg_reload_conf/],
  ])('%s', async (sql, why) => {
    expect((await refusal(sql)).message).toMatch(why)
  })

  it('refuses an empty text, one of only comments, and more than 64 KiB', async () => {
    expect((await refusal('')).message).toMatch(/is empty/)
    expect((await refusal('  \n ')).message).toMatch(/is empty/)
    expect((await refusal('-- nothing here\n/* or here */')).message).toMatch(/no statement/)
    const big = `SELECT '${'x'.repeat(70_000)}' AS s`
    expect((await refusal(big)).message).toMatch(/bytes; the console reads at most 65536/)
  })

  it('refuses a NUL, which would end the text early for the parser', async () => {
    expect((await refusal('SELECT 1\0; DELETE FROM t')).message).toMatch(/NUL/)
  })

  it('reports a syntax error with PostgreSQL\'s message and the 1-based position', async () => {
    const issue = await refusal('SELECT a FROM t WHERE')
    expect(issue.message).toBe('syntax error at end of input (at character 22)')
    expect(issue.position).toBe(22)
    const typo = await refusal("SELECT 'é', FROM t")
    expect(typo.message).toMatch(/^syntax error at or near "FROM"/)
    expect(typo.position).toBe(13)
  })

  it('names the refused function as it was written', async () => {
    expect(await refusal('SELECT Pg_Catalog.Pg_Sleep(1)')).toMatchObject({ function: 'pg_catalog.pg_sleep' })
  })
})
