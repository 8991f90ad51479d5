import type { Database } from '@onepipe/core'
import type { LeaseTimings } from './lease.js'
import type { Schedule } from './schedule.js'
import type { CronExecution } from './sql.js'

/**
 * What a cron handler receives for one run.
 *
 * @example
 * ```ts
 * .handler((ctx) => ctx.db.execute('DELETE FROM sessions WHERE expires_at < $1', [ctx.scheduledTime]))
 * ```
 */
export interface CronContext {
  jobName: string
  /** The tick this run is for (database clock); for a manual run, when it was triggered. */
  scheduledTime: Date
  /** When the run actually started (database clock). */
  actualTime: Date
  executionId: string
  kind: CronExecution['kind']
  /** The lease's fencing token for this run: pass it to external systems that can reject stale writers. */
  fencingToken: number
  db: Database
  /** Aborted when the job is stopped and the shutdown wait ran out. */
  signal: AbortSignal
}

/**
 * A cron handler; its return value (JSON) is stored as the run's output.
 *
 * @example
 * ```ts
 * const purge: CronHandler = async (ctx) => ({ deleted: await ctx.db.execute('DELETE FROM tmp') })
 * ```
 */
export type CronHandler = (ctx: CronContext) => unknown

/**
 * Anything that starts a workflow run idempotently by id (a built
 * Workflow). Typed by shape so Cron does not depend on the workflow engine.
 *
 * @example
 * ```ts
 * const starter: WorkflowStarter<{ day: string }> = { start: (input, { workflowId }) => billing.start(input, { workflowId }) }
 * ```
 */
export interface WorkflowStarter<I> {
  start(input: I, options: { workflowId: string }): Promise<unknown>
}


/** @internal Everything a built Cron runs with. */
export interface CronConfig {
  name: string
  schedule: Schedule
  catchUp: boolean
  maxCatchUp: number
  overlap: boolean
  db: Database | undefined
  lease: LeaseTimings
  shutdownMs: number
  /** Finished runs older than this are deleted by the lease holder. */
  retentionMs: number
  handler: CronHandler
}

/**
 * What `info()` answers about a cron job: its schedule, its next tick, and
 * which instance holds its lease (the one running its ticks) until when.
 *
 * @example
 * ```ts
 * const i: CronInfo = await report.info()
 * if (i.lease?.live) console.log(`${i.lease.holder} runs the ticks; lease until ${i.lease.expiresAt.toISOString()}`)
 * ```
 */
export interface CronInfo {
  jobName: string
  /** When {@link Cron.pause} paused it; null while it runs on schedule. */
  pausedAt: Date | null
  schedule: string
  timezone: string | undefined
  /** The next tick after now (database clock); null when the expression never fires again. */
  nextRun: Date | null
  /** This process's instance id, to compare with `lease.holder`. */
  instanceId: string
  /** The job's lease; null before any instance ever took it. */
  lease: {
    /** Instance id of the last holder (`serve()`'s instance id, or the id a Cron made for itself). */
    holder: string
    /** Bumped on every acquisition: a higher token is a later holder. */
    fencingToken: number
    /** When the holder took it (database clock). */
    acquiredAt: Date
    /** Past this (database clock) the lease is free; the holder renews it well before. */
    expiresAt: Date
    /** Whether the lease was still in force when read (`expiresAt` after the database's now). */
    live: boolean
  } | null
}
