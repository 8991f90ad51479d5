import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { builtDatabases, ConfigError, Database, loadMigrations, ONEPIPE_SQL_DIR, type DatabaseOptions, type Migration } from '@onepipe/core'
import { Command, Option } from '@onepipe/streams/cli'
import { loadEntry } from '../manifest.js'
import { migrateDefault, migrateEntry, type DatabaseMigration } from '../migrate.js'
import { requireDatabaseUrlInProduction } from './database.js'
import { cell, printJson, printTable } from './output.js'

/**
 * One migration as `onepipe migrate status` sees it: `applied` (in the
 * ledger with the same checksum), `pending` (would be applied by `up`),
 * `changed` (applied, but its file differs since: `up` refuses it) or
 * `unknown` (in the ledger, not in the files: applied by another version of
 * the app).
 */
export interface MigrationState {
  source: string
  id: number
  name: string
  status: 'applied' | 'pending' | 'changed' | 'unknown'
  appliedAt: Date | null
}

/** The migrations of one source (`onepipe`, `app`…), counted. */
export interface SourceSummary {
  source: string
  applied: number
  pending: number
  /** `000003_orders` of the newest applied one, null when none is. */
  last: string | null
}

/** What `onepipe migrate status` reports for one database. */
export interface DatabaseMigrationStatus {
  database: string
  schema: string | null
  sources: SourceSummary[]
  migrations: MigrationState[]
}

interface LedgerRow {
  source: string
  id: number
  name: string
  checksum: string
  applied_at: Date
}

const label = (m: { id: number; name: string }) => `${String(m.id).padStart(6, '0')}_${m.name}`

/** What `up` would apply to a database with these options, in that order (OnePipe's first). */
function wantedMigrations(o: Readonly<DatabaseOptions>): Migration[] {
  return [...[{ dir: ONEPIPE_SQL_DIR, source: 'onepipe' }, ...o.migrationDirs].flatMap((d) => loadMigrations(d.dir, d.source)), ...o.inlineMigrations]
}

async function readLedger(db: Database): Promise<LedgerRow[]> {
  // A handle of its own with migrations off: asking must not apply anything,
  // and the app's Database stays unconnected.
  const look = new Database({ ...db.options, name: `${db.name}:status`, migrate: false })
  try {
    const [t] = await look.query<{ present: boolean }>("SELECT to_regclass('_onepipe_migrations') IS NOT NULL AS present")
    if (t?.present !== true) return []
    return await look.query<LedgerRow>('SELECT source, id, name, checksum, applied_at FROM _onepipe_migrations ORDER BY applied_at, source, id')
  } finally {
    await look.close()
  }
}

/**
 * Compares what `onepipe migrate up` would apply to a database with its
 * ledger (`_onepipe_migrations`), without applying anything.
 *
 * @example
 * ```ts
 * const s = await migrationStatus(Database.fromEnv())
 * console.log(s.sources) // [{ source: 'onepipe', applied: 17, pending: 0, last: '000017_tenants' }]
 * ```
 */
export async function migrationStatus(db: Database): Promise<DatabaseMigrationStatus> {
  const wanted = wantedMigrations(db.options)
  const ledger = await readLedger(db)
  const done = new Map(ledger.map((r) => [`${r.source}:${Number(r.id)}`, r]))
  const migrations: MigrationState[] = wanted.map((m) => {
    const r = done.get(`${m.source}:${m.id}`)
    done.delete(`${m.source}:${m.id}`)
    if (!r) return { source: m.source, id: m.id, name: m.name, status: 'pending', appliedAt: null }
    return { source: m.source, id: m.id, name: m.name, status: r.checksum === m.checksum ? 'applied' : 'changed', appliedAt: r.applied_at }
  })
  for (const r of done.values()) migrations.push({ source: r.source, id: Number(r.id), name: r.name, status: 'unknown', appliedAt: r.applied_at })
  const sources = [...new Set(migrations.map((m) => m.source))].map((source): SourceSummary => {
    const mine = migrations.filter((m) => m.source === source)
    const applied = mine.filter((m) => m.status !== 'pending').sort((a, b) => a.id - b.id)
    const newest = applied.at(-1)
    return { source, applied: applied.length, pending: mine.length - applied.length, last: newest ? label(newest) : null }
  })
  return { database: db.name, schema: db.schema ?? null, sources, migrations }
}

/** The database of the environment with extra folders, as `onepipe migrate --dir` builds it. */
function environmentWithDirs(dirs: readonly string[], source: string): Database {
  const builder = Database.create('main')
  for (const dir of dirs) {
    const abs = resolve(dir)
    if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new ConfigError('MIGRATION_DIR_MISSING', `No migration folder at ${abs}; --dir takes a folder of numbered files such as 000001_orders.sql`)
    builder.migrations(abs, source)
  }
  return builder.build()
}

interface MigrateFlags {
  dirs: string[]
  source: string
  /** Whether --source was typed (on `migrate` or on the subcommand). */
  sourceGiven: boolean
  json: boolean
}

/**
 * The subcommand's flags merged with its parent's: commander hands an
 * option the parent also declares (`--dir`, `--source`) to the parent even
 * when typed after the subcommand's name, so both are read.
 */
function migrateFlags(cmd: Command): MigrateFlags {
  const own = cmd.opts<{ dir?: string[]; source?: string; json?: boolean }>()
  const parent = cmd.parent?.opts<{ dir?: unknown; source?: unknown }>() ?? {}
  const parentDirs = Array.isArray(parent.dir) ? parent.dir.filter((d): d is string => typeof d === 'string') : []
  const ownSource = cmd.getOptionValueSource('source') === 'cli'
  const parentSource = cmd.parent?.getOptionValueSource('source') === 'cli' && typeof parent.source === 'string'
  const source = ownSource ? (own.source ?? 'app') : parentSource ? String(parent.source) : 'app'
  return { dirs: [...parentDirs, ...(own.dir ?? [])], source, sourceGiven: ownSource || parentSource, json: own.json === true }
}

function checkDirFlags(entry: string | undefined, f: MigrateFlags, cmd: Command): void {
  // Same rules as `onepipe migrate`: an app declares its folders on its Database.
  if (entry !== undefined && (f.dirs.length > 0 || f.sourceGiven)) cmd.error('error: --dir and --source apply only without an entry; an app declares its folders with Database.create(name).migrations(dir)')
  if (entry === undefined && f.dirs.length === 0 && f.sourceGiven) cmd.error('error: --source names the migrations of --dir; give --dir too')
}

const dirOption = () => new Option('--dir <folder>', 'without an entry: also this folder of numbered .sql files (repeatable)').argParser((v: string, prev: string[]) => [...prev, v]).default([])
const sourceOption = () => new Option('--source <name>', 'ledger source of the --dir migrations').default('app')

function printStatus(all: DatabaseMigrationStatus[], json: boolean): void {
  if (json) return printJson({ databases: all })
  for (const s of all) {
    process.stdout.write(`database ${s.database}${s.schema ? ` (schema ${s.schema})` : ''}\n`)
    printTable(s.sources, [
      { header: 'SOURCE', value: (r) => r.source },
      { header: 'APPLIED', value: (r) => String(r.applied) },
      { header: 'PENDING', value: (r) => String(r.pending) },
      { header: 'LAST APPLIED', value: (r) => cell(r.last) },
    ], 'no migrations')
    for (const m of s.migrations.filter((x) => x.status !== 'applied')) process.stdout.write(`${m.status}: ${m.source}:${m.id} ${label(m)}\n`)
  }
}

/**
 * Adds `up [entry]` and `status [entry]` under the existing `migrate`
 * command, which keeps its own action (`onepipe migrate [entry]`): `up` is
 * that same action under its explicit name; `status` lists applied and
 * pending migrations per source without applying any. An entry named `up`
 * or `status` is written `./up`.
 *
 * @example
 * ```ts
 * const migrate = program.commands.find((c) => c.name() === 'migrate')!
 * addMigrateSubcommands(migrate)
 * await runProgram(program, ['migrate', 'status', '--json'])
 * ```
 */
export function addMigrateSubcommands(migrate: Command): void {
  migrate
    .command('up')
    .description('apply pending migrations (what `onepipe migrate` does); one JSON line per database: { database, applied, alreadyApplied }')
    .argument('[entry]', 'compiled app entry file: migrate every Database it builds; without it, the database of the environment')
    .addOption(dirOption())
    .addOption(sourceOption())
    .addOption(new Option('--json', 'accepted for symmetry: up always prints JSON lines').default(false))
    .addHelpText('after', MIGRATE_HELP('up'))
    .action(async (entry: string | undefined, _flags: unknown, cmd: Command) => {
      const f = migrateFlags(cmd)
      checkDirFlags(entry, f, cmd)
      // With an entry too: the app's Databases would fall back to an embedded one as well.
      requireDatabaseUrlInProduction()
      const print = (r: DatabaseMigration) => printJson(r, 'line')
      if (entry !== undefined) {
        await migrateEntry(entry, print)
        return
      }
      requireDatabaseUrlInProduction()
      print(await migrateDefault({ dirs: f.dirs, source: f.source }))
    })

  migrate
    .command('status')
    .description('list applied and pending migrations per source, per database, without applying any')
    .argument('[entry]', 'compiled app entry file: every Database it builds; without it, the database of the environment')
    .addOption(dirOption())
    .addOption(sourceOption())
    .addOption(new Option('--json', 'print one JSON document: { databases: [{ database, schema, sources, migrations }] }').default(false))
    .addHelpText('after', MIGRATE_HELP('status'))
    .action(async (entry: string | undefined, _flags: unknown, cmd: Command) => {
      const f = migrateFlags(cmd)
      checkDirFlags(entry, f, cmd)
      requireDatabaseUrlInProduction()
      let dbs: Database[]
      if (entry !== undefined) {
        await loadEntry(entry)
        dbs = builtDatabases()
      } else dbs = []
      if (dbs.length === 0) {
        requireDatabaseUrlInProduction()
        dbs = [environmentWithDirs(f.dirs, f.source)]
      }
      const all: DatabaseMigrationStatus[] = []
      for (const db of dbs) all.push(await migrationStatus(db))
      printStatus(all, f.json)
    })
}

const MIGRATE_HELP = (sub: 'up' | 'status') => `
Without an entry: the database of the environment, DATABASE_URL (schema
ONEPIPE_DB_SCHEMA) or else the embedded one in ONEPIPE_DATA_DIR (default
.onepipe); with NODE_ENV=production, DATABASE_URL is required.

Examples:
  onepipe migrate ${sub} dist/main.js
  DATABASE_URL=postgres://… onepipe migrate ${sub} --dir sql --source shop${sub === 'status' ? '\n  onepipe migrate status --json' : ''}`
