import { createHash } from 'node:crypto'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ConfigError } from '../errors/index.js'
import type { Driver, DriverQueryable } from './drivers.js'

/** One numbered migration file such as `000002_workflows.sql`. */
export interface Migration {
  /** Who owns the numbering: `onepipe` for OnePipe's tables, `app` (or a name you pick) for yours. */
  source: string
  id: number
  name: string
  sql: string
  checksum: string
}

/** What {@link runMigrations} did. */
export interface MigrationResult {
  /** `source:id` of each migration applied now. */
  applied: string[]
  alreadyApplied: string[]
}

const FILE = /^(\d{6})_([a-z0-9_]+)\.sql$/

/** The folder holding OnePipe's own migrations (`packages/core/sql`). */
export const ONEPIPE_SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url))

/**
 * Reads the numbered migration files of a folder, in order. Numbers must be
 * unique and the files are append-only: a changed file is caught by its
 * checksum when it is applied again.
 *
 * @example
 * ```ts
 * const all = loadMigrations(ONEPIPE_SQL_DIR)
 * ```
 */
export function loadMigrations(dir: string, source = 'onepipe'): Migration[] {
  const out: Migration[] = []
  for (const f of readdirSync(dir).sort()) {
    const m = FILE.exec(f)
    if (!m) continue
    const sql = readFileSync(`${dir}/${f}`, 'utf8')
    const id = Number(m[1])
    if (out.some((x) => x.id === id)) throw new ConfigError('MIGRATION_DUPLICATE', `Two migrations are numbered ${m[1]} in ${dir}`)
    out.push({ source, id, name: m[2] ?? '', sql, checksum: createHash('sha256').update(sql).digest('hex') })
  }
  return out
}

/**
 * A migration given as SQL text rather than a file; `name` follows the file
 * rule without `.sql` (`000001_orders`).
 *
 * @throws ConfigError `INVALID_MIGRATION` when the name does not follow it or the SQL is empty
 *
 * @example
 * ```ts
 * const m = inlineMigration('000001_orders', 'CREATE TABLE orders (id serial PRIMARY KEY)', 'app')
 * ```
 */
export function inlineMigration(name: string, sql: string, source: string): Migration {
  const m = /^(\d{6})_([a-z0-9_]+)$/.exec(name)
  if (!m) throw new ConfigError('INVALID_MIGRATION', `Migration name "${name}" must look like 000001_create_orders (six digits, an underscore, lower-case words)`)
  if (typeof sql !== 'string' || sql.trim() === '') throw new ConfigError('INVALID_MIGRATION', `Migration "${name}" has no SQL`)
  return { source, id: Number(m[1]), name: m[2] ?? '', sql, checksum: createHash('sha256').update(sql).digest('hex') }
}

/**
 * Applies every pending migration in one transaction under a
 * transaction-scoped advisory lock keyed by schema, so N processes starting
 * at once migrate exactly once and a failed migration leaves nothing half
 * applied.
 */
export async function runMigrations(driver: Driver, schema: string | undefined, migrations: Migration[]): Promise<MigrationResult> {
  return driver.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`onepipe:migrate:${schema ?? 'public'}`])
    if (schema) await tx.exec(`CREATE SCHEMA IF NOT EXISTS "${schema}"; SET LOCAL search_path TO "${schema}"`)
    await createLedger(tx)
    const done = await appliedMigrations(tx)
    const result: MigrationResult = { applied: [], alreadyApplied: [] }
    for (const m of migrations) {
      const key = `${m.source}:${m.id}`
      const prior = done.get(key)
      if (prior !== undefined) {
        if (prior !== m.checksum) {
          throw new ConfigError('MIGRATION_CHANGED', `Migration ${key} (${m.name}) was changed after it was applied; migrations are append-only: add a new numbered file instead`)
        }
        result.alreadyApplied.push(key)
        continue
      }
      try {
        await tx.exec(m.sql)
      } catch (e) {
        // Name the migration: "relation already exists" alone does not say which file to look at.
        const err = e as { message?: string }
        if (err && typeof err === 'object' && typeof err.message === 'string') err.message = `Migration ${key} (${m.name}) failed: ${err.message}`
        throw e
      }
      await recordMigration(tx, m)
      result.applied.push(key)
    }
    return result
  })
}

async function createLedger(tx: DriverQueryable): Promise<void> {
  await tx.exec(`CREATE TABLE IF NOT EXISTS _onepipe_migrations (
    source text NOT NULL,
    id integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
  )`)
}

async function appliedMigrations(tx: DriverQueryable): Promise<Map<string, string>> {
  const r = await tx.query('SELECT source, id, checksum FROM _onepipe_migrations', [])
  return new Map(r.rows.map((row) => [`${String(row.source)}:${Number(row.id)}`, String(row.checksum)]))
}

async function recordMigration(tx: DriverQueryable, m: Migration): Promise<void> {
  await tx.query('INSERT INTO _onepipe_migrations (source, id, name, checksum) VALUES ($1, $2, $3, $4)', [m.source, m.id, m.name, m.checksum])
}
