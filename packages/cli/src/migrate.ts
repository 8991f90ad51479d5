import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { builtDatabases, ConfigError, Database } from '@onepipe/core'
import { loadEntry } from './manifest.js'

/** What `onepipe migrate` did to one database (one JSON line each). */
export interface DatabaseMigration {
  /** The name the app gave the Database (`main` for the default one). */
  database: string
  /** `source:id` of each migration applied now, in order. */
  applied: string[]
  /** How many were applied before this run. */
  alreadyApplied: number
}

/** Called after each database is migrated, so the CLI prints as it goes. */
export type OnMigrated = (result: DatabaseMigration) => void

async function migrateOne(db: Database): Promise<DatabaseMigration> {
  // A copy with migrations on: an app that turned autoMigrate off is exactly
  // the one that relies on this command. The copy also keeps the app's own
  // Database unconnected and is closed at once, so the next database on the
  // same embedded folder can take its lock.
  const copy = new Database({ ...db.options, migrate: true })
  try {
    const r = await copy.ready()
    return { database: db.name, applied: r.applied, alreadyApplied: r.alreadyApplied.length }
  } finally {
    await copy.close()
  }
}

/**
 * Loads an app entry without starting it and applies the pending migrations
 * of every Database it built, one after the other: OnePipe's own tables,
 * then the app's folders (`.migrations(dir)`) and inline `.migration()`s.
 * An entry that builds no Database gets the default one, as `serve()` would.
 *
 * @throws ConfigError `ENTRY_NOT_FOUND` / `ENTRY_FAILED` from loading; database errors (`DB_DIR_LOCKED`, `DB_UNAVAILABLE`, …) as they come
 *
 * @example
 * ```ts
 * await migrateEntry('dist/main.js', (r) => console.log(r.database, r.applied))
 * ```
 */
export async function migrateEntry(entry: string, onMigrated: OnMigrated = () => {}): Promise<DatabaseMigration[]> {
  await loadEntry(entry)
  const dbs = builtDatabases()
  const out: DatabaseMigration[] = []
  for (const db of dbs.length > 0 ? dbs : [Database.fromEnv()]) {
    const r = await migrateOne(db)
    onMigrated(r)
    out.push(r)
  }
  return out
}

/** Where `migrateDefault` applies extra folders. */
export interface MigrateDefaultOptions {
  /** Folders of numbered `.sql` files, applied after OnePipe's own. */
  dirs?: string[]
  /** The ledger source of those folders (default `app`; `onepipe` is reserved). */
  source?: string
}

/**
 * Applies OnePipe's own migrations, then those of `dirs`, to the database
 * of the environment: DATABASE_URL (schema ONEPIPE_DB_SCHEMA), else the
 * embedded one in ONEPIPE_DATA_DIR (default `.onepipe`).
 *
 * @throws ConfigError `MIGRATION_DIR_MISSING` for a folder that is not there, `INVALID_MIGRATION_SOURCE` for `onepipe`
 *
 * @example
 * ```ts
 * const r = await migrateDefault({ dirs: ['sql'], source: 'app' })
 * ```
 */
export async function migrateDefault(o: MigrateDefaultOptions = {}): Promise<DatabaseMigration> {
  const builder = Database.create('main')
  for (const dir of o.dirs ?? []) {
    const abs = resolve(dir)
    if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new ConfigError('MIGRATION_DIR_MISSING', `No migration folder at ${abs}; --dir takes a folder of numbered files such as 000001_orders.sql`)
    builder.migrations(abs, o.source ?? 'app')
  }
  return migrateOne(builder.build())
}
