import { existsSync } from 'node:fs'
import { ConfigError, Database, DatabaseError } from '@onepipe/core'

/**
 * Refuses to fall back to the embedded database in production: an operator
 * who forgot DATABASE_URL there would otherwise read (or reset, or add a
 * user to) an empty local folder and believe it was the real thing.
 *
 * @throws ConfigError `DATABASE_URL_REQUIRED` when NODE_ENV=production and DATABASE_URL is unset
 *
 * @example
 * ```ts
 * requireDatabaseUrlInProduction() // before Database.fromEnv()
 * ```
 */
export function requireDatabaseUrlInProduction(): void {
  if (process.env.NODE_ENV === 'production' && !process.env.DATABASE_URL) {
    throw new ConfigError(
      'DATABASE_URL_REQUIRED',
      'NODE_ENV=production and DATABASE_URL is not set: operator commands never use the embedded database in production; set DATABASE_URL (and ONEPIPE_DB_SCHEMA if the app uses one)',
      { variables: ['DATABASE_URL'] },
    )
  }
}

/**
 * The database of the environment, as the app sees it (DATABASE_URL and
 * ONEPIPE_DB_SCHEMA, else the embedded one in ONEPIPE_DATA_DIR), with
 * migrations off: looking at a database must never change its schema;
 * `onepipe migrate up` is the one command that does.
 *
 * @throws ConfigError `DATABASE_URL_REQUIRED` (production without DATABASE_URL), `INVALID_DATABASE_URL`
 *
 * @example
 * ```ts
 * const db = environmentDatabase()
 * try { await db.query('SELECT 1') } finally { await db.close() }
 * ```
 */
export function environmentDatabase(): Database {
  requireDatabaseUrlInProduction()
  return Database.fromEnv({ name: 'onepipe-cli', migrate: false, max: 2 })
}

/**
 * Runs `fn` with the database of the environment and closes it after,
 * whatever happens. A missing OnePipe table becomes `DB_NOT_MIGRATED`, which
 * says what to run, rather than PostgreSQL's "relation does not exist".
 *
 * @example
 * ```ts
 * const n = await withDatabase(async (db) => (await db.query('SELECT count(*) AS n FROM _onepipe_flows'))[0])
 * ```
 */
export async function withDatabase<T>(fn: (db: Database) => Promise<T>): Promise<T> {
  const db = environmentDatabase()
  // Opening an embedded folder that is not there would create an empty database: refuse, and say where it looked.
  const folder = db.kind === 'pglite' ? db.options.dataDir : undefined
  if (folder !== undefined && !existsSync(folder)) {
    await db.close()
    throw new ConfigError('DB_NOT_FOUND', `No embedded database in ${folder}: run this where the app keeps its data, or set ONEPIPE_DATA_DIR to that folder (the parent of its db/), or DATABASE_URL`, { dir: folder })
  }
  try {
    return await fn(db)
  } catch (e) {
    throw notMigrated(e, db)
  } finally {
    await db.close()
  }
}

/**
 * `e`, or a ConfigError `DB_NOT_MIGRATED` when it is PostgreSQL's
 * "undefined table" (SQLSTATE 42P01).
 *
 * @example
 * ```ts
 * try { await db.query('SELECT * FROM _onepipe_cron_jobs') } catch (e) { throw notMigrated(e) }
 * ```
 */
export function notMigrated(e: unknown, db?: Database): unknown {
  if (!(e instanceof DatabaseError) || e.sqlState !== '42P01') return e
  const where = db === undefined ? 'The database' : db.kind === 'pglite' ? `The embedded database in ${db.options.dataDir ?? 'memory'}` : `Schema ${db.schema ?? 'public'} of DATABASE_URL`
  return new ConfigError('DB_NOT_MIGRATED', `${where} has no OnePipe tables (${e.message}): if that is the app's database, run onepipe migrate up; else point ONEPIPE_DATA_DIR, DATABASE_URL or ONEPIPE_DB_SCHEMA at the app's`)
}
