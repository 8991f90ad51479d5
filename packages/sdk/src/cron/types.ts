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
