// One SQL operation per function. Every instant that instances must agree
// on (lease expiry, "due now", actual start) is taken from the database
// clock; each answer carries `now` so the scheduler can keep its local
// estimate of that clock.
import { NotFoundError, type Queryable } from '@onepipe/core'

/**
 * One recorded run of a cron job, as `history()` and `trigger()` answer it.
 *
 * @example
 * ```ts
 * const [last] = await job.history({ limit: 1 })
 * if (last?.status === 'failed') console.error(last.error?.message)
 * ```
 */
export interface CronExecution {
  executionId: string
  jobName: string
  /** The tick this run belongs to (for manual runs: when it was triggered). */
  scheduledTime: Date
  kind: 'scheduled' | 'catch_up' | 'manual'
  status: 'queued' | 'running' | 'completed' | 'failed' | 'abandoned'
  instanceId: string | null
  fencingToken: number | null
  startedAt: Date | null
  finishedAt: Date | null
  output: unknown
  error: { code: string; message: string } | null
}

interface ExecutionRow {
  execution_id: string
  job_name: string
  scheduled_time: Date
  kind: CronExecution['kind']
  status: CronExecution['status']
  instance_id: string | null
  fencing_token: number | null
  started_at: Date | null
  finished_at: Date | null
  output: unknown
  error: CronExecution['error']
}

const COLUMNS = 'execution_id, job_name, scheduled_time, kind, status, instance_id, fencing_token, started_at, finished_at, output, error'

function toExecution(r: ExecutionRow): CronExecution {
  return {
    executionId: r.execution_id,
    jobName: r.job_name,
    scheduledTime: r.scheduled_time,
    kind: r.kind,
    status: r.status,
    instanceId: r.instance_id,
    fencingToken: r.fencing_token,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    output: r.output,
    error: r.error,
  }
}

/** Records (or updates) the job's definition. */
export async function upsertJob(q: Queryable, job: string, schedule: string, timezone: string | undefined): Promise<void> {
  await q.execute(
    `INSERT INTO _onepipe_cron_jobs (job_name, schedule, timezone) VALUES ($1, $2, $3)
     ON CONFLICT (job_name) DO UPDATE SET schedule = excluded.schedule, timezone = excluded.timezone, updated_at = now()
     WHERE _onepipe_cron_jobs.schedule IS DISTINCT FROM excluded.schedule OR _onepipe_cron_jobs.timezone IS DISTINCT FROM excluded.timezone`,
    [job, schedule, timezone ?? null],
  )
}

/** The lease as seen after an acquisition attempt. */
export interface LockState {
  acquired: boolean
  lockedBy: string
  fencingToken: number
  expiresAt: Date
  now: Date
}

/**
 * Takes the job's lease if it is free or expired, bumping the fencing token;
 * otherwise answers who holds it until when.
 */
export async function acquireLock(q: Queryable, job: string, instance: string, ttlMs: number): Promise<LockState> {
  const rows = await q.query<{ acquired: boolean; locked_by: string; fencing_token: number; expires_at: Date; now: Date }>(
    `WITH a AS (
       INSERT INTO _onepipe_cron_locks AS l (job_name, locked_by, fencing_token, locked_at, expires_at)
       VALUES ($1, $2, 1, now(), now() + make_interval(secs => $3::float8 / 1000))
       ON CONFLICT (job_name) DO UPDATE
         SET locked_by = excluded.locked_by, fencing_token = l.fencing_token + 1, locked_at = now(), expires_at = excluded.expires_at
         WHERE l.expires_at <= now()
       RETURNING locked_by, fencing_token, expires_at
     )
     SELECT true AS acquired, locked_by, fencing_token, expires_at, now() AS now FROM a
     UNION ALL
     SELECT false, locked_by, fencing_token, expires_at, now() FROM _onepipe_cron_locks
     WHERE job_name = $1 AND NOT EXISTS (SELECT 1 FROM a)`,
    [job, instance, ttlMs],
  )
  const r = rows[0]
  // No row at all only when a concurrent first INSERT is in flight: report it as held.
  if (!r) return { acquired: false, lockedBy: '', fencingToken: 0, expiresAt: new Date(0), now: new Date(0) }
  return { acquired: r.acquired, lockedBy: r.locked_by, fencingToken: r.fencing_token, expiresAt: r.expires_at, now: r.now }
}

/** The job's lease as stored, with the database clock; undefined before anyone ever took it. */
export async function selectLock(q: Queryable, job: string): Promise<{ lockedBy: string; fencingToken: number; lockedAt: Date; expiresAt: Date; now: Date } | undefined> {
  const [r] = await q.query<{ locked_by: string; fencing_token: number; locked_at: Date; expires_at: Date; now: Date }>(
    `SELECT locked_by, fencing_token, locked_at, expires_at, now() AS now FROM _onepipe_cron_locks WHERE job_name = $1`,
    [job],
  )
  return r ? { lockedBy: r.locked_by, fencingToken: r.fencing_token, lockedAt: r.locked_at, expiresAt: r.expires_at, now: r.now } : undefined
}

/** Extends the lease only while this instance still holds it with this token and it has not run out. */
export async function renewLock(q: Queryable, job: string, instance: string, token: number, ttlMs: number): Promise<{ expiresAt: Date; now: Date } | undefined> {
  const [r] = await q.query<{ expires_at: Date; now: Date }>(
    `UPDATE _onepipe_cron_locks SET expires_at = now() + make_interval(secs => $4::float8 / 1000)
     WHERE job_name = $1 AND locked_by = $2 AND fencing_token = $3 AND expires_at > now()
     RETURNING expires_at, now() AS now`,
    [job, instance, token, ttlMs],
  )
  return r ? { expiresAt: r.expires_at, now: r.now } : undefined
}

/** Ends the lease at once, only if it is still this instance's with this token. */
export async function releaseLock(q: Queryable, job: string, instance: string, token: number): Promise<boolean> {
  const n = await q.execute(
    `UPDATE _onepipe_cron_locks SET expires_at = now()
     WHERE job_name = $1 AND locked_by = $2 AND fencing_token = $3 AND expires_at > now()`,
    [job, instance, token],
  )
  return n === 1
}

/** Marks runs claimed under an older token and never finished: their holder lost the lease. */
export async function abandonStale(q: Queryable, job: string, token: number): Promise<number> {
  return q.execute(
    `UPDATE _onepipe_cron_executions
     SET status = 'abandoned', error = jsonb_build_object('code', 'CRON_OWNER_LOST', 'message', 'the instance running this tick lost its lease before finishing; the tick is not run again (at most once per tick)')
     WHERE job_name = $1 AND status = 'running' AND fencing_token < $2`,
    [job, token],
  )
}

/**
 * The last tick that has an execution row (manual runs excluded) or the
 * last resume when later (no catch-up of paused time), when the job first
 * existed, whether it is paused, and the database clock.
 */
export async function lastTick(q: Queryable, job: string): Promise<{ last: Date | null; createdAt: Date; paused: boolean; now: Date }> {
  const [r] = await q.query<{ last: Date | null; created_at: Date; paused: boolean; now: Date }>(
    `SELECT GREATEST((SELECT max(scheduled_time) FROM _onepipe_cron_executions WHERE job_name = $1 AND kind <> 'manual'), resumed_at) AS last,
            created_at, paused_at IS NOT NULL AS paused, now() AS now
     FROM _onepipe_cron_jobs WHERE job_name = $1`,
    [job],
  )
  if (!r) throw new NotFoundError('CRON_JOB_NOT_FOUND', `Cron job "${job}" is not registered; call start() or trigger() first`)
  return { last: r.last, createdAt: r.created_at, paused: r.paused, now: r.now }
}

/** Pauses (sets paused_at once) or resumes (clears it, stamps resumed_at) a job; false when the job is unknown. */
export async function setPaused(q: Queryable, job: string, paused: boolean): Promise<boolean> {
  const n = await q.execute(
    paused
      ? 'UPDATE _onepipe_cron_jobs SET paused_at = COALESCE(paused_at, now()), updated_at = now() WHERE job_name = $1'
      : 'UPDATE _onepipe_cron_jobs SET resumed_at = CASE WHEN paused_at IS NULL THEN resumed_at ELSE now() END, paused_at = NULL, updated_at = now() WHERE job_name = $1',
    [job],
  )
  return n > 0
}

/** When the job was paused, null when it runs. */
export async function pausedAt(q: Queryable, job: string): Promise<Date | null> {
  const [r] = await q.query<{ paused_at: Date | null }>('SELECT paused_at FROM _onepipe_cron_jobs WHERE job_name = $1', [job])
  return r?.paused_at ?? null
}

/**
 * Claims one tick: inserts its execution row, fenced by the lease (the
 * insert happens only while this instance holds the lease with this
 * token). `held` false means the lease is gone; `startedAt` undefined with
 * `held` true means another run already owns this tick.
 */
export async function claimTick(
  q: Queryable,
  a: { executionId: string; job: string; scheduledTime: Date; kind: 'scheduled' | 'catch_up'; instance: string; token: number },
): Promise<{ held: boolean; startedAt: Date | undefined }> {
  const [r] = await q.query<{ held: boolean; started_at: Date | null }>(
    `WITH l AS (
       SELECT 1 FROM _onepipe_cron_locks
       WHERE job_name = $2 AND locked_by = $5 AND fencing_token = $6 AND expires_at > now()
     ), ins AS (
       INSERT INTO _onepipe_cron_executions (execution_id, job_name, scheduled_time, kind, status, instance_id, fencing_token, started_at)
       SELECT $1, $2, $3, $4, 'running', $5, $6, now() FROM l
       ON CONFLICT (job_name, scheduled_time) DO NOTHING
       RETURNING started_at
     )
     SELECT EXISTS (SELECT 1 FROM l) AS held, (SELECT started_at FROM ins) AS started_at`,
    [a.executionId, a.job, a.scheduledTime, a.kind, a.instance, a.token],
  )
  return { held: r?.held ?? false, startedAt: r?.started_at ?? undefined }
}

/** Queues a manual run for whichever instance holds the lease. */
export async function enqueueManual(q: Queryable, executionId: string, job: string): Promise<void> {
  // clock_timestamp(): two triggers in one transaction still get distinct ticks.
  await q.execute(
    `INSERT INTO _onepipe_cron_executions (execution_id, job_name, scheduled_time, kind, status)
     VALUES ($1, $2, clock_timestamp(), 'manual', 'queued')`,
    [executionId, job],
  )
}

/** Claims the oldest queued manual run, fenced by the lease like a tick. */
export async function claimManual(q: Queryable, job: string, instance: string, token: number): Promise<{ executionId: string; scheduledTime: Date; startedAt: Date } | undefined> {
  const [r] = await q.query<{ execution_id: string; scheduled_time: Date; started_at: Date }>(
    `UPDATE _onepipe_cron_executions e
     SET status = 'running', instance_id = $2, fencing_token = $3, started_at = now()
     FROM _onepipe_cron_locks l
     WHERE e.execution_id = (
             SELECT execution_id FROM _onepipe_cron_executions
             WHERE job_name = $1 AND status = 'queued' ORDER BY queued_at LIMIT 1 FOR UPDATE SKIP LOCKED)
       AND l.job_name = $1 AND l.locked_by = $2 AND l.fencing_token = $3 AND l.expires_at > now()
     RETURNING e.execution_id, e.scheduled_time, e.started_at`,
    [job, instance, token],
  )
  return r ? { executionId: r.execution_id, scheduledTime: r.scheduled_time, startedAt: r.started_at } : undefined
}

/** Records the outcome of a run this instance claimed (also after it was marked abandoned: the real outcome wins). */
export async function finishExecution(
  q: Queryable,
  a: { executionId: string; instance: string; token: number; status: 'completed' | 'failed'; output: string | null; error: object | null },
): Promise<void> {
  await q.execute(
    `UPDATE _onepipe_cron_executions
     SET status = $4, output = ($5::text)::jsonb, error = $6::jsonb, finished_at = now()
     WHERE execution_id = $1 AND instance_id = $2 AND fencing_token = $3 AND status IN ('running', 'abandoned')`,
    [a.executionId, a.instance, a.token, a.status, a.output, a.error],
  )
}

/**
 * Deletes finished runs older than `keepMs`, always keeping the newest tick
 * (it is where the next catch-up starts counting).
 */
export async function pruneExecutions(q: Queryable, job: string, keepMs: number): Promise<number> {
  return q.execute(
    `DELETE FROM _onepipe_cron_executions
     WHERE job_name = $1 AND status IN ('completed', 'failed', 'abandoned')
       AND scheduled_time < now() - make_interval(secs => $2::float8 / 1000)
       AND scheduled_time < (SELECT max(scheduled_time) FROM _onepipe_cron_executions WHERE job_name = $1 AND kind <> 'manual')`,
    [job, keepMs],
  )
}

/** One execution by id. */
export async function getExecution(q: Queryable, executionId: string): Promise<CronExecution | undefined> {
  const [r] = await q.query<ExecutionRow>(`SELECT ${COLUMNS} FROM _onepipe_cron_executions WHERE execution_id = $1`, [executionId])
  return r ? toExecution(r) : undefined
}

/** Recent executions, newest tick first. */
export async function listExecutions(q: Queryable, job: string, limit: number, since: Date | undefined): Promise<CronExecution[]> {
  const rows = await q.query<ExecutionRow>(
    `SELECT ${COLUMNS} FROM _onepipe_cron_executions
     WHERE job_name = $1 AND ($2::timestamptz IS NULL OR scheduled_time >= $2)
     ORDER BY scheduled_time DESC LIMIT $3`,
    [job, since ?? null, limit],
  )
  return rows.map(toExecution)
}

/** The database clock. */
export async function dbNow(q: Queryable): Promise<Date> {
  const [r] = await q.query<{ now: Date }>('SELECT now() AS now')
  return r!.now
}
