import { NotFoundError, TimeoutError, type Database } from '@onepipe/core'
import type { CronExecution } from '@onepipe/sdk'
import { Command, nonNegativeInteger, Option } from '@onepipe/streams/cli'
import { withDatabase } from './database.js'
import { untilSignal } from './signals.js'
import { cell, printFields, printJson, printTable } from './output.js'

/** One cron job as `onepipe cron list` shows it. */
export interface CronJobSummary {
  name: string
  schedule: string
  timezone: string | null
  paused: boolean
  /** The next tick after now (database clock); null when the expression never fires again or cannot be read. */
  nextRun: Date | null
  /** The instance holding the lease, or that held it last; null before anyone took it. */
  leaseHolder: string | null
  /** Whether that lease was still in force when read. */
  leaseLive: boolean
  leaseExpiresAt: Date | null
  /** Manual runs waiting for the lease holder. */
  queued: number
}

interface JobRow {
  name: string
  schedule: string
  timezone: string | null
  paused: boolean
  locked_by: string | null
  expires_at: Date | null
  live: boolean | null
  queued: number
  now: Date
}

/**
 * Every cron job registered in the database (a job registers when its app
 * starts it), with its next tick computed as the scheduler does and who
 * holds its lease.
 *
 * @example
 * ```ts
 * const jobs = await listCronJobs(db) // [{ name: 'nightly-report', schedule: '0 2 * * *', paused: false, … }]
 * ```
 */
export async function listCronJobs(db: Database): Promise<CronJobSummary[]> {
  const { CronSchedule } = await import('@onepipe/sdk')
  const rows = await db.query<JobRow>(
    `SELECT j.job_name AS name, j.schedule, j.timezone, j.paused_at IS NOT NULL AS paused,
            l.locked_by, l.expires_at, l.expires_at > now() AS live, now() AS now,
            (SELECT count(*) FROM _onepipe_cron_executions e WHERE e.job_name = j.job_name AND e.status = 'queued') AS queued
     FROM _onepipe_cron_jobs j LEFT JOIN _onepipe_cron_locks l ON l.job_name = j.job_name
     ORDER BY j.job_name`,
  )
  return rows.map((r) => {
    let nextRun: Date | null = null
    try {
      nextRun = new CronSchedule(r.schedule, r.timezone ?? undefined).next(r.now)
    } catch {
      // A schedule another version of the app accepted: listing the job matters more than its next tick.
    }
    return {
      name: r.name,
      schedule: r.schedule,
      timezone: r.timezone,
      paused: r.paused,
      nextRun,
      leaseHolder: r.locked_by,
      leaseLive: r.live === true,
      leaseExpiresAt: r.expires_at,
      queued: Number(r.queued),
    }
  })
}

/** What `onepipe cron trigger` queued, and the run once finished when it waited. */
export interface TriggeredRun {
  job: string
  executionId: string
  /** The instance that will run it: the live lease holder, null when none holds the lease now. */
  leaseHolder: string | null
  execution: CronExecution | null
}

async function readRun(db: Database, executionId: string): Promise<CronExecution | undefined> {
  const [r] = await db.query<{ job_name: string; scheduled_time: Date; kind: CronExecution['kind']; status: CronExecution['status']; instance_id: string | null; fencing_token: number | null; started_at: Date | null; finished_at: Date | null; output: unknown; error: CronExecution['error'] }>(
    'SELECT job_name, scheduled_time, kind, status, instance_id, fencing_token, started_at, finished_at, output, error FROM _onepipe_cron_executions WHERE execution_id = $1',
    [executionId],
  )
  if (!r) return undefined
  return {
    executionId,
    jobName: r.job_name,
    scheduledTime: r.scheduled_time,
    kind: r.kind,
    status: r.status,
    instanceId: r.instance_id,
    fencingToken: r.fencing_token === null ? null : Number(r.fencing_token),
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    output: r.output,
    error: r.error,
  }
}

async function waitForRun(db: Database, job: string, executionId: string, seconds: number, signal: AbortSignal): Promise<CronExecution> {
  const deadline = Date.now() + seconds * 1000
  for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
    const ex = await readRun(db, executionId)
    if (ex && ex.status !== 'queued' && ex.status !== 'running') return ex
    if (Date.now() >= deadline || signal.aborted) {
      throw new TimeoutError('CRON_TRIGGER_TIMEOUT', `Cron "${job}": the manual run ${executionId} has not finished after ${seconds} s (status ${ex?.status ?? 'unknown'}); it stays queued for the lease holder`, { executionId })
    }
    await new Promise((res) => setTimeout(res, Math.min(pause, Math.max(0, deadline - Date.now()))))
  }
}

/**
 * Queues a manual run of a registered job for the instance holding its
 * lease, through the Cron primitive's own `enqueue()` (same row, same wake-up
 * notice as the dashboard's trigger); with `waitSeconds`, waits for its outcome.
 *
 * @throws NotFoundError `CRON_JOB_NOT_FOUND`; TimeoutError `CRON_TRIGGER_TIMEOUT` when waiting ran out
 *
 * @example
 * ```ts
 * const { executionId } = await triggerCronJob(db, 'nightly-report')
 * ```
 */
export async function triggerCronJob(db: Database, job: string, o: { waitSeconds?: number; signal?: AbortSignal } = {}): Promise<TriggeredRun> {
  const [row] = await db.query<{ schedule: string; timezone: string | null; locked_by: string | null; live: boolean | null }>(
    `SELECT j.schedule, j.timezone, l.locked_by, l.expires_at > now() AS live
     FROM _onepipe_cron_jobs j LEFT JOIN _onepipe_cron_locks l ON l.job_name = j.job_name WHERE j.job_name = $1`,
    [job],
  )
  if (!row) throw new NotFoundError('CRON_JOB_NOT_FOUND', `No cron job "${job}" in this database (onepipe cron list shows them; a job registers when its app starts it)`, { job })
  const { Cron } = await import('@onepipe/sdk')
  // The job's stored schedule, so registering it again inside enqueue() changes nothing.
  // The handler never runs here: only the lease holder runs queued runs.
  const builder = Cron.create(job).schedule(row.schedule).db(db).handler(() => undefined)
  const cron = (row.timezone ? builder.timezone(row.timezone) : builder).build()
  const { executionId } = await cron.enqueue()
  const leaseHolder = row.live === true ? row.locked_by : null
  const execution = o.waitSeconds === undefined ? null : await waitForRun(db, job, executionId, o.waitSeconds, o.signal ?? new AbortController().signal)
  return { job, executionId, leaseHolder, execution }
}

/**
 * Adds `cron list` and `cron trigger <name>` to a program.
 *
 * @example
 * ```ts
 * addCronCommands(program)
 * await runProgram(program, ['cron', 'trigger', 'nightly-report', '--wait', '60'])
 * ```
 */
export function addCronCommands(program: Command): void {
  const cron = program.command('cron').description('cron jobs registered in the database')
  cron
    .command('list')
    .description('every job: schedule, paused, next run, lease holder, queued manual runs')
    .addOption(new Option('--json', 'print one JSON document: { jobs: [...] }').default(false))
    .addHelpText('after', '\nExamples:\n  onepipe cron list\n  onepipe cron list --json')
    .action(async (flags: { json: boolean }) => {
      const jobs = await withDatabase(listCronJobs)
      if (flags.json) return printJson({ jobs })
      printTable(jobs, [
        { header: 'JOB', value: (j) => j.name },
        { header: 'SCHEDULE', value: (j) => `${j.schedule}${j.timezone ? ` (${j.timezone})` : ''}` },
        { header: 'PAUSED', value: (j) => (j.paused ? 'yes' : 'no') },
        { header: 'NEXT RUN', value: (j) => cell(j.nextRun) },
        { header: 'LEASE', value: (j) => (j.leaseHolder === null ? '-' : `${j.leaseHolder} (${j.leaseLive ? 'live' : 'expired'})`) },
        { header: 'QUEUED', value: (j) => String(j.queued) },
      ], 'no cron jobs in this database')
    })

  cron
    .command('trigger')
    .description('queue a manual run for the instance holding the lease (paused jobs too); --wait for its outcome')
    .argument('<name>', 'the job')
    .addOption(new Option('--wait <seconds>', 'wait up to this long for the run to finish and print it').argParser(nonNegativeInteger))
    .addOption(new Option('--json', 'print one JSON document: { job, executionId, leaseHolder, execution }').default(false))
    .addHelpText('after', `
Without a live lease holder (no instance of the app runs the job), the run
stays queued until one starts.

Examples:
  onepipe cron trigger nightly-report
  onepipe cron trigger nightly-report --wait 120 --json`)
    .action(async (name: string, flags: { wait?: number; json: boolean }) => {
      const r = await untilSignal((signal) => withDatabase((db) => triggerCronJob(db, name, { ...(flags.wait !== undefined ? { waitSeconds: flags.wait } : {}), signal })))
      if (flags.json) return printJson(r)
      printFields([
        ['job', r.job],
        ['execution', r.executionId],
        ['runs on', r.leaseHolder ?? 'no instance holds the lease now: the run waits for one'],
        ...(r.execution ? [['status', r.execution.status] as const, ['output', r.execution.output] as const, ['error', r.execution.error ? `${r.execution.error.code}: ${r.execution.error.message}` : null] as const] : []),
      ])
    })
}
