// Operator commands of `onepipe`: look at and act on the database of an
// environment (migrations, reset, accounts, flows, workflow runs, cron jobs)
// without the app's code running. docs/operators.md describes each one.
import type { Command } from '@onepipe/streams/cli'
import { addAccountCommands } from './accounts.js'
import { addCronCommands } from './cron.js'
import { addFlowCommands } from './flows.js'
import { addResetCommand } from './reset.js'
import { addWorkflowCommands } from './workflows.js'

export { addMigrateSubcommands, migrationStatus, type DatabaseMigrationStatus, type MigrationState, type SourceSummary } from './migrations.js'
export { environmentDatabase, requireDatabaseUrlInProduction, withDatabase } from './database.js'
export { resetDatabase, type ResetResult } from './reset.js'
export { createKey, createUser, environmentAuth, CLI_ROLES, type CreatedKey, type CreatedUser } from './accounts.js'
export { listFlows, tailFlow, type FlowSummary, type TailOptions } from './flows.js'
export { RUN_STATUSES, showRun, type RunWithSteps } from './workflows.js'
export { listCronJobs, triggerCronJob, type CronJobSummary, type TriggeredRun } from './cron.js'

/**
 * Adds the operator commands to the `onepipe` program: `db reset`,
 * `users create`, `keys create`, `flows list|tail`, `workflows
 * list|show|cancel` and `cron list|trigger`. Each talks to the database of
 * the environment (DATABASE_URL and ONEPIPE_DB_SCHEMA, else the embedded one
 * in ONEPIPE_DATA_DIR; DATABASE_URL is required with NODE_ENV=production),
 * prints a table or, with `--json`, JSON. `migrate up|status` are added to
 * the existing `migrate` command by {@link addMigrateSubcommands}.
 *
 * @example
 * ```ts
 * import { runProgram } from '@onepipe/streams/cli'
 * const program = createProgram()
 * addOperatorCommands(program)
 * process.exit(await runProgram(program, ['workflows', 'list', '--status', 'failed']))
 * ```
 */
export function addOperatorCommands(program: Command): void {
  addResetCommand(program.command('db').description('the database of the environment'))
  addAccountCommands(program)
  addFlowCommands(program)
  addWorkflowCommands(program)
  addCronCommands(program)
}
