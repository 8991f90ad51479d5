import { NotFoundError, type Database } from '@onepipe/core'
import type { RunInfo, RunStatus, StepInfo, WorkflowClient } from '@onepipe/sdk'
import { Command, nonNegativeInteger, Option } from '@onepipe/streams/cli'
import { withDatabase } from './database.js'
import { cell, printFields, printJson, printTable } from './output.js'

/** The run statuses `--status` takes, as the engine stores them. */
export const RUN_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const satisfies readonly RunStatus[]

/** Runs `fn` with a WorkflowClient on the environment's database: the engine's own read and cancel paths, without the workflows' code. */
async function withClient<T>(fn: (client: WorkflowClient, db: Database) => Promise<T>): Promise<T> {
  const { WorkflowClient } = await import('@onepipe/sdk')
  return withDatabase((db) => fn(new WorkflowClient({ db }), db))
}

/** A run with its recorded steps, as `onepipe workflows show` prints it. */
export interface RunWithSteps {
  run: RunInfo
  steps: StepInfo[]
}

/**
 * One run and its steps, through the WorkflowClient.
 *
 * @throws NotFoundError `WORKFLOW_RUN_NOT_FOUND`
 *
 * @example
 * ```ts
 * const { run, steps } = await showRun(new WorkflowClient({ db }), 'order-o1')
 * ```
 */
export async function showRun(client: WorkflowClient, runId: string): Promise<RunWithSteps> {
  const run = await client.get(runId)
  if (!run) throw new NotFoundError('WORKFLOW_RUN_NOT_FOUND', `No workflow run "${runId}" (onepipe workflows list shows the recent ones)`, { workflowId: runId })
  return { run, steps: await client.steps(runId) }
}

const runColumns = [
  { header: 'RUN', value: (r: RunInfo) => r.workflowId },
  { header: 'WORKFLOW', value: (r: RunInfo) => r.workflowName },
  { header: 'STATUS', value: (r: RunInfo) => r.status },
  { header: 'OWNER', value: (r: RunInfo) => cell(r.owner) },
  { header: 'CREATED', value: (r: RunInfo) => cell(r.createdAt) },
  { header: 'UPDATED', value: (r: RunInfo) => cell(r.updatedAt) },
]

function printRun({ run, steps }: RunWithSteps): void {
  printFields([
    ['run', run.workflowId],
    ['workflow', run.workflowName],
    ['status', run.status],
    ['owner', run.owner],
    ['heartbeat', run.heartbeatAt],
    // The engine hands a run back at a clean stop with a wake time of 0: "any instance, now".
    ['wakes at', run.wakeAt instanceof Date && run.wakeAt.getTime() === 0 ? 'now (handed back, waiting for an instance)' : run.wakeAt],
    ['deadline', run.deadlineAt],
    ['parent', run.parentId],
    ['created', run.createdAt],
    ['updated', run.updatedAt],
    ['completed', run.completedAt],
    ['input', run.input],
    ['output', run.output],
    ['error', run.error ? `${run.error.code}: ${run.error.message}` : undefined],
  ])
  process.stdout.write('\n')
  printTable(steps, [
    { header: 'STEP', value: (s) => s.stepId },
    { header: 'STATUS', value: (s) => s.status },
    { header: 'ATTEMPTS', value: (s) => String(s.attempts) },
    { header: 'RECORDED', value: (s) => cell(s.createdAt) },
    { header: 'RESULT', value: (s) => (s.error ? `${s.error.code}: ${s.error.message}` : cell(s.result)) },
  ], 'no steps recorded yet')
}

/**
 * Adds `workflows list`, `workflows show <runId>` and `workflows cancel <runId>`.
 *
 * @example
 * ```ts
 * addWorkflowCommands(program)
 * await runProgram(program, ['workflows', 'list', '--status', 'failed', '--limit', '20'])
 * ```
 */
export function addWorkflowCommands(program: Command): void {
  const workflows = program.command('workflows').description('workflow runs recorded in the database')
  workflows
    .command('list')
    .description('runs, newest first: id, workflow, status, owner instance, times')
    .addOption(new Option('--status <status>', 'only runs in this status').choices(RUN_STATUSES))
    .addOption(new Option('--name <workflow>', 'only runs of this workflow'))
    .addOption(new Option('--limit <n>', 'at most this many runs (1-1000)').argParser(nonNegativeInteger).default(50))
    .addOption(new Option('--json', 'print one JSON document: { runs: [...] }').default(false))
    .addHelpText('after', '\nExamples:\n  onepipe workflows list\n  onepipe workflows list --name process-order --status failed --limit 20 --json')
    .action(async (flags: { status?: RunStatus; name?: string; limit: number; json: boolean }, cmd: Command) => {
      if (flags.limit < 1 || flags.limit > 1000) cmd.error('error: --limit must be from 1 to 1000')
      const runs = await withClient((c) => c.list({ ...(flags.name !== undefined ? { workflowName: flags.name } : {}), ...(flags.status ? { status: flags.status } : {}), limit: flags.limit }))
      if (flags.json) return printJson({ runs })
      printTable(runs, runColumns, 'no workflow runs')
    })

  workflows
    .command('show')
    .description('one run with its input, output or error, and its recorded steps')
    .argument('<runId>', 'the run (workflowId)')
    .addOption(new Option('--json', 'print one JSON document: { run, steps }').default(false))
    .addHelpText('after', '\nExamples:\n  onepipe workflows show order-o1\n  onepipe workflows show order-o1 --json')
    .action(async (runId: string, flags: { json: boolean }) => {
      const r = await withClient((c) => showRun(c, runId))
      if (flags.json) return printJson(r)
      printRun(r)
    })

  workflows
    .command('cancel')
    .description('cancel a live run and its children, as the engine does (no further step starts)')
    .argument('<runId>', 'the run (workflowId)')
    .addOption(new Option('--json', 'print one JSON document: the run after cancelling').default(false))
    .addHelpText('after', '\nA finished run cannot be cancelled: WORKFLOW_NOT_RUNNING (exit 1).\n\nExamples:\n  onepipe workflows cancel order-o1')
    .action(async (runId: string, flags: { json: boolean }) => {
      const run = await withClient(async (c) => {
        await c.cancel(runId)
        return (await showRun(c, runId)).run
      })
      if (flags.json) return printJson({ run })
      process.stdout.write(`run ${run.workflowId} (${run.workflowName}) is ${run.status}\n`)
    })
}
