import { afterAll, describe, expect, it } from 'vitest'
import { fileURLToPath } from 'node:url'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Database, loadMigrations, ONEPIPE_SQL_DIR, ConfigError } from '@onepipe/core'
import { postgresUrl, requireService, spawnNode, uniqueName } from '@onepipe/testing'

const fixture = fileURLToPath(new URL('./fixtures/migrate.mjs', import.meta.url))
const schemas: string[] = []

afterAll(async () => {
  const db = Database.create('drop').postgres(postgresUrl()).autoMigrate(false).build()
  for (const s of schemas) await db.execute(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)
  await db.close()
})

describe('migrations', () => {
  it('3 processes starting together migrate once: one ledger row per migration', async () => {
    await requireService('postgres')
    const schema = uniqueName('mig')
    schemas.push(schema)
    const startAt = String(Date.now() + 1500)
    const procs = [0, 1, 2].map(() => spawnNode(fixture, [postgresUrl(), schema, startAt]))
    const results = await Promise.all(procs.map((p) => p.waitFor(/RESULT .*/, 90_000)))
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0, 0])
    const parsed = results.map((r) => JSON.parse(r.slice(7)) as { applied: string[]; alreadyApplied: string[] })
    const expected = loadMigrations(ONEPIPE_SQL_DIR).map((m) => `onepipe:${m.id}`)
    // Exactly one process applied everything; the others found it done.
    expect(parsed.filter((p) => p.applied.length > 0)).toHaveLength(1)
    expect(parsed.find((p) => p.applied.length > 0)?.applied).toEqual(expected)
    expect(parsed.filter((p) => p.applied.length === 0).every((p) => p.alreadyApplied.length === expected.length)).toBe(true)

    const db = Database.create('check').postgres(postgresUrl()).schema(schema).autoMigrate(false).build()
    const rows = await db.query<{ source: string; id: number; n: number }>('SELECT source, id, count(*) OVER (PARTITION BY source, id)::int8 AS n FROM _onepipe_migrations ORDER BY id')
    await db.close()
    expect(rows.map((r) => `${r.source}:${r.id}`)).toEqual(expected)
    expect(rows.every((r) => r.n === 1)).toBe(true)
  })

  it('refuses a migration whose file changed after it was applied, and applies app migrations under their own numbering', async () => {
    const schema = uniqueName('mig')
    schemas.push(schema)
    const dir = mkdtempSync(join(tmpdir(), 'onepipe-mig-'))
    writeFileSync(join(dir, '000001_widgets.sql'), 'CREATE TABLE widgets (id int PRIMARY KEY);')
    const a = Database.create('a').postgres(postgresUrl()).schema(schema).migrations(dir, 'shop').build()
    const r = await a.ready()
    expect(r.applied).toContain('shop:1')
    await a.execute('INSERT INTO widgets VALUES (1)')
    await a.close()

    writeFileSync(join(dir, '000001_widgets.sql'), 'CREATE TABLE widgets (id bigint PRIMARY KEY);')
    const b = Database.create('b').postgres(postgresUrl()).schema(schema).migrations(dir, 'shop').build()
    const err = await b.ready().catch((e: unknown) => e)
    await b.close()
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).code).toBe('MIGRATION_CHANGED')
  })

  it('a failing migration leaves nothing half applied', async () => {
    const schema = uniqueName('mig')
    schemas.push(schema)
    const dir = mkdtempSync(join(tmpdir(), 'onepipe-mig-'))
    writeFileSync(join(dir, '000001_ok.sql'), 'CREATE TABLE ok_table (id int);')
    writeFileSync(join(dir, '000002_bad.sql'), 'CREATE TABLE bad_table (id int); SELECT no_such_function();')
    const db = Database.create('c').postgres(postgresUrl()).schema(schema).migrations(dir, 'app').build()
    await expect(db.ready()).rejects.toThrow(/no_such_function/)
    await db.close()
    const check = Database.create('d').postgres(postgresUrl()).autoMigrate(false).build()
    const tables = await check.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [schema])
    await check.close()
    expect(tables).toEqual([])
  })
})
