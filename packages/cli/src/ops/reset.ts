import { existsSync, readdirSync, rmSync } from 'node:fs'
import { dirname, resolve, sep } from 'node:path'
import { ConfigError, Database } from '@onepipe/core'
import { Command, Option } from '@onepipe/streams/cli'
import { environmentDatabase } from './database.js'
import { printJson } from './output.js'

/** What `onepipe db reset` removed. */
export interface ResetResult {
  /** `postgres` (a schema dropped and made again) or `pglite` (a schema, or the data folder deleted). */
  kind: 'postgres' | 'pglite'
  /** The schema dropped and created empty again; null when the data folder was deleted. */
  schema: string | null
  /** Tenants' schemas (`<schema>__t_<name>`) dropped with it. */
  tenantSchemas: string[]
  /** The embedded data folder deleted; null for a schema reset. */
  dataDir: string | null
}

/**
 * Refuses a data folder whose deletion would take more than OnePipe's
 * data: the working directory or a folder holding it, the root, or a
 * folder with files but no `db` (not an embedded database's folder).
 */
function checkDataDir(dir: string): void {
  const cwd = process.cwd()
  const holdsCwd = cwd === dir || cwd.startsWith(dir.endsWith(sep) ? dir : dir + sep)
  if (holdsCwd || dirname(dir) === dir) throw new ConfigError('DB_RESET_UNSAFE', `ONEPIPE_DATA_DIR resolves to ${dir}, which holds the working directory; refusing to delete it`)
  if (existsSync(dir) && readdirSync(dir).length > 0 && !existsSync(resolve(dir, 'db'))) {
    throw new ConfigError('DB_RESET_UNSAFE', `${dir} has no db folder, so it is not an embedded OnePipe database's data folder; refusing to delete it`)
  }
}

async function dropSchema(db: Database): Promise<{ schema: string; tenantSchemas: string[] }> {
  // One transaction: a failure leaves the schema as it was, never half dropped.
  return db.transaction(async (tx) => {
    const [cur] = await tx.query<{ schema: string | null }>('SELECT current_schema() AS schema')
    const schema = db.schema ?? cur?.schema ?? 'public'
    const like = `${schema.replace(/[\\%_]/g, (c) => `\\${c}`)}\\_\\_t\\_%`
    const tenants = (await tx.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE nspname LIKE $1 ORDER BY nspname', [like])).map((r) => r.nspname)
    // Identifiers cannot be parameters; these come from pg_namespace or were checked by ident() when the Database was built.
    for (const t of tenants) await tx.execute(`DROP SCHEMA "${t.replace(/"/g, '""')}" CASCADE`)
    await tx.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await tx.execute(`CREATE SCHEMA "${schema}"`)
    // PostgreSQL's own public schema lets every role use it; a recreated one would not.
    if (schema === 'public') await tx.execute('GRANT USAGE ON SCHEMA public TO PUBLIC')
    return { schema, tenantSchemas: tenants }
  })
}

/**
 * Empties the database of the environment: drops its schema (with its
 * tenants' schemas) and makes it again empty, or, for the embedded default
 * without ONEPIPE_DB_SCHEMA, deletes the data folder (ONEPIPE_DATA_DIR).
 * Opening the embedded database first takes its lock, so a running app's
 * folder is never deleted under it (`DB_DIR_LOCKED`).
 *
 * @throws ConfigError `DB_RESET_IN_PRODUCTION` whenever NODE_ENV=production, `DATABASE_URL_REQUIRED`, `DB_RESET_UNSAFE`, `DB_DIR_LOCKED`
 *
 * @example
 * ```ts
 * const r = await resetDatabase() // { kind: 'pglite', schema: null, tenantSchemas: [], dataDir: '/app/.onepipe' }
 * ```
 */
export async function resetDatabase(): Promise<ResetResult> {
  if (process.env.NODE_ENV === 'production') {
    throw new ConfigError('DB_RESET_IN_PRODUCTION', 'onepipe db reset is refused when NODE_ENV=production, with or without --force; it deletes every row of the app')
  }
  const db = environmentDatabase()
  const wholeFolder = db.kind === 'pglite' && db.schema === undefined && db.options.dataDir !== undefined
  const dataDir = resolve(process.env.ONEPIPE_DATA_DIR ?? '.onepipe')
  if (wholeFolder) checkDataDir(dataDir)
  try {
    if (wholeFolder) {
      if (existsSync(resolve(dataDir, 'db'))) await db.query('SELECT 1')
    } else {
      const r = await dropSchema(db)
      return { kind: db.kind, schema: r.schema, tenantSchemas: r.tenantSchemas, dataDir: null }
    }
  } finally {
    await db.close()
  }
  rmSync(dataDir, { recursive: true, force: true })
  return { kind: 'pglite', schema: null, tenantSchemas: [], dataDir }
}

/**
 * Adds `reset --force` under a `db` command.
 *
 * @example
 * ```ts
 * addResetCommand(program.command('db').description('the database of the environment'))
 * ```
 */
export function addResetCommand(db: Command): void {
  db.command('reset')
    .description('delete every row: drop the schema and create it empty, or delete the embedded data folder (never with NODE_ENV=production)')
    .addOption(new Option('--force', 'required: confirms that all data goes').default(false))
    .addOption(new Option('--json', 'print one JSON document: { kind, schema, tenantSchemas, dataDir }').default(false))
    .addHelpText(
      'after',
      `
Resets DATABASE_URL's schema (ONEPIPE_DB_SCHEMA, else the connection's current
schema, with its tenants' schemas), or deletes ONEPIPE_DATA_DIR (default
.onepipe) for the embedded database. Run onepipe migrate up afterwards, or
start the app, to create OnePipe's tables again.

Examples:
  onepipe db reset --force
  DATABASE_URL=postgres://… ONEPIPE_DB_SCHEMA=shop_dev onepipe db reset --force`,
    )
    .action(async (flags: { force: boolean; json: boolean }, cmd: Command) => {
      // Production first: there, --force changes nothing and the answer is a plain "no" (exit 1).
      if (process.env.NODE_ENV !== 'production' && !flags.force) cmd.error('error: onepipe db reset deletes all data of the database; add --force to confirm')
      const r = await resetDatabase()
      if (flags.json) return printJson(r)
      if (r.dataDir !== null) process.stdout.write(`deleted the embedded database folder ${r.dataDir}\n`)
      else process.stdout.write(`reset schema ${r.schema}${r.tenantSchemas.length > 0 ? ` and ${r.tenantSchemas.length} tenant schema(s): ${r.tenantSchemas.join(', ')}` : ''}\n`)
      process.stdout.write('run onepipe migrate up (or start the app) to create the tables again\n')
    })
}
