import { addServeCommand, Command, configureProgram, Option, packageVersion } from '@onepipe/streams/cli'
import { migrateDefault, migrateEntry, type DatabaseMigration } from './migrate.js'
import { readManifest } from './manifest.js'
import { addDevCommand } from './dev/index.js'
import { addDeployCommand } from './deploy/index.js'
import { addMigrateSubcommands, addOperatorCommands } from './ops/index.js'
import { requireDatabaseUrlInProduction } from './ops/database.js'

const printLine = (r: DatabaseMigration) => process.stdout.write(JSON.stringify(r) + '\n')

/**
 * The `onepipe` command tree: `manifest`, `migrate` (`up`, `status`), `dev`, `deploy`, the operator
 * commands (`db reset`, `users`, `keys`, `flows`, `workflows`, `cron`) and `streams serve`.
 * Actions resolve when their work is done; parse it with `runProgram` from
 * `@onepipe/streams/cli`, which turns usage errors into exit code 2.
 *
 * @example
 * ```ts
 * import { runProgram } from '@onepipe/streams/cli'
 * process.exit(await runProgram(createProgram(), ['migrate', 'dist/main.js']))
 * ```
 */
export function createProgram(): Command {
  const program = configureProgram(new Command('onepipe'), packageVersion(new URL('../package.json', import.meta.url))).description(
    'OnePipe: inspect, migrate and serve a OnePipe app',
  )

  program
    .command('manifest')
    .description("print the app's manifest (every built primitive) as JSON; the app is loaded, not started")
    .argument('<entry>', 'compiled app entry file, e.g. dist/main.js')
    .action(async (entry: string) => {
      process.stdout.write(JSON.stringify(await readManifest(entry), null, 2) + '\n')
    })

  const migrate = program
    .command('migrate')
    .description('apply pending migrations; prints one JSON line per database: { database, applied, alreadyApplied }')
    .argument(
      '[entry]',
      "compiled app entry file: load it without starting it and migrate every Database it builds (OnePipe's tables, then its .migrations() folders and inline .migration()s)",
    )
    .addOption(new Option('--dir <folder>', 'without an entry: also apply this folder of numbered .sql files (repeatable)').argParser((v: string, prev: string[]) => [...prev, v]).default([]))
    .addOption(new Option('--source <name>', 'ledger source of the --dir migrations').default('app'))
    .addHelpText(
      'after',
      `
Without an entry, migrates the database of the environment: DATABASE_URL (schema
ONEPIPE_DB_SCHEMA) or else the embedded one in ONEPIPE_DATA_DIR (default .onepipe).

Examples:
  onepipe migrate dist/main.js
  DATABASE_URL=postgres://… onepipe migrate --dir sql --source shop`,
    )
    .action(async (entry: string | undefined, flags: { dir: string[]; source: string }, cmd: Command) => {
      // Never migrate an embedded database in production: DATABASE_URL was forgotten.
      requireDatabaseUrlInProduction()
      if (entry !== undefined) {
        // An app declares its folders on its Database; a --dir here would be silently beside the point.
        if (flags.dir.length > 0 || cmd.getOptionValueSource('source') === 'cli') cmd.error('error: --dir and --source apply only without an entry; an app declares its folders with Database.create(name).migrations(dir)')
        await migrateEntry(entry, printLine)
        return
      }
      if (flags.dir.length === 0 && cmd.getOptionValueSource('source') === 'cli') cmd.error('error: --source names the migrations of --dir; give --dir too')
      printLine(await migrateDefault({ dirs: flags.dir, source: flags.source }))
    })

  addMigrateSubcommands(migrate)

  addDevCommand(program)
  addDeployCommand(program)
  addOperatorCommands(program)

  addServeCommand(program.command('streams').description('the Unbroken streams server (same as onepipe-streams)'))
  return program
}
