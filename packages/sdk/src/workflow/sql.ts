// Every statement a workflow run makes. Writes a run makes while it owns the
// lease check `fence` and `owner` in the same statement (a FOR SHARE or
// UPDATE on the run row), so a process that lost the lease records nothing.
import { DatabaseError, type Queryable, type SerializedError } from '@onepipe/core'
import type { RunStatus } from './types.js'

export interface RunRow {
  workflow_id: string
  workflow_name: string
  status: RunStatus
  input: unknown
  output: { v?: unknown } | null
  error: SerializedError | null
  parent_id: string | null
  owner: string | null
  fence: number
  /** When the owner last renewed its lease (database clock); null while nobody owns the run. */
  heartbeat_at: Date | null
  wake_at: Date | null
  deadline_at: Date | null
  signal_seq: number
  /** False for a run a WorkflowClient started: its input has not been through the workflow's schema yet. */
  input_checked: boolean
  /** W3C traceparent of the span that started the run (null when untraced): its executions continue that trace. */
  traceparent: string | null
  created_at: Date
  updated_at: Date
  completed_at: Date | null
  /** The database clock when the row was read. */
  db_now: Date
}

export interface StepRow {
  step_name: string
  status: 'completed' | 'failed' | 'waiting'
  result: { v?: unknown } | null
  error: SerializedError | null
  attempts: number
  wake_at: Date | null
  created_at: Date
}

/** Who writes: the run, the fence it was claimed with, and this process. */
export interface Lease {
  id: string
  fence: number
  owner: string
}

/**
 * Runs a statement again when PostgreSQL reports a deadlock or serialization
 * failure (a child finishing while its parent is cancelled locks the two rows
 * in opposite orders); every statement here is safe to repeat.
 */
export async function retryTransient<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn()
    } catch (e) {
      if (!(e instanceof DatabaseError) || !e.retryable || i >= attempts) throw e
      await new Promise((r) => setTimeout(r, 10 * i + Math.random() * 20))
    }
  }
}

const COLS = `workflow_id, workflow_name, status, input, output, error, parent_id, owner, fence, heartbeat_at, wake_at, deadline_at, signal_seq, input_checked, traceparent, created_at, updated_at, completed_at, now() AS db_now`
const LIVE = `status IN ('pending', 'running')`
const MS = `* interval '1 millisecond'`

export interface NewRun {
  id: string
  name: string
  input: unknown
  parentId: string | null
  /** This process when it executes the run at once; null leaves it for any executor. */
  owner: string | null
  timeoutMs: number | null
  channel: string
  /** False when the input was not validated against the workflow's schema (a WorkflowClient start). */
  checked: boolean
  traceparent: string | null
}

/**
 * Inserts a run unless one with this id exists. An owned insert is the
 * run's first claim (fence 1); an unowned one notifies executors.
 */
export async function insertRun(q: Queryable, r: NewRun): Promise<{ row: RunRow; created: boolean } | undefined> {
  const rows = await q.query<RunRow & { created: boolean }>(
    `WITH ins AS (
       INSERT INTO _onepipe_workflows (workflow_id, workflow_name, status, input, parent_id, owner, fence, heartbeat_at, wake_at, deadline_at, input_checked, traceparent)
       VALUES ($1, $2, CASE WHEN $5::text IS NULL THEN 'pending' ELSE 'running' END, $3::jsonb, $4, $5::text,
               CASE WHEN $5::text IS NULL THEN 0 ELSE 1 END, CASE WHEN $5::text IS NULL THEN NULL ELSE now() END,
               CASE WHEN $5::text IS NULL THEN now() END, now() + $6::float8 ${MS}, $8, $9)
       ON CONFLICT (workflow_id) DO NOTHING
       RETURNING ${COLS}),
     note AS (SELECT pg_notify($7, 'due:' || workflow_name) FROM ins WHERE owner IS NULL)
     SELECT ins.*, true AS created, (SELECT count(*) FROM note) AS notified FROM ins
     UNION ALL
     SELECT ${COLS}, false AS created, 0 AS notified FROM _onepipe_workflows WHERE workflow_id = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,
    [r.id, r.name, { v: r.input }, r.parentId, r.owner, r.timeoutMs, r.channel, r.checked, r.traceparent],
  )
  const row = rows[0]
  if (!row) return undefined
  return { row, created: row.created }
}

export async function selectRun(q: Queryable, id: string): Promise<RunRow | undefined> {
  const [row] = await q.query<RunRow>(`SELECT ${COLS} FROM _onepipe_workflows WHERE workflow_id = $1`, [id])
  return row
}

/** Runs of one workflow, newest first; `input`, when given, is a JSON value the run's input must contain (jsonb `@>`). */
export async function selectRuns(q: Queryable, name: string, status: RunStatus | undefined, limit: number, offset: number, input?: unknown): Promise<RunRow[]> {
  return q.query<RunRow>(
    `SELECT ${COLS} FROM _onepipe_workflows WHERE workflow_name = $1 AND ($2::text IS NULL OR status = $2)
       AND ($5::jsonb IS NULL OR input @> $5::jsonb)
     ORDER BY created_at DESC, workflow_id LIMIT $3 OFFSET $4`,
    [name, status ?? null, limit, offset, input === undefined ? null : { v: input }],
  )
}

/**
 * Makes a failed or cancelled run due again (its deadline, if any, moved
 * by the time it had), forgetting the failed or waiting steps recorded
 * after its last completed one, so replay returns every completed step
 * from the log and runs the step that failed again. Answers the run, or
 * nothing when it is not failed or cancelled.
 */
export async function retryRun(q: Queryable, id: string, channel: string): Promise<{ workflow_id: string; workflow_name: string } | undefined> {
  const [row] = await q.query<{ workflow_id: string; workflow_name: string }>(
    `WITH run AS (
       UPDATE _onepipe_workflows SET status = 'running', output = NULL, error = NULL, owner = NULL, heartbeat_at = NULL, wake_at = now(),
              completed_at = NULL, updated_at = now(),
              deadline_at = CASE WHEN deadline_at IS NULL THEN NULL ELSE now() + (deadline_at - created_at) END
       WHERE workflow_id = $1 AND status IN ('failed', 'cancelled')
       RETURNING workflow_id, workflow_name, pg_notify($2, 'due:' || workflow_name)),
     forgotten AS (
       DELETE FROM _onepipe_workflow_steps s USING run
       WHERE s.workflow_id = run.workflow_id AND s.status <> 'completed'
         AND s.created_at >= COALESCE((SELECT max(created_at) FROM _onepipe_workflow_steps c WHERE c.workflow_id = $1 AND c.status = 'completed'), '-infinity')
       RETURNING 1)
     SELECT workflow_id, workflow_name, (SELECT count(*) FROM forgotten) AS forgotten FROM run`,
    [id, channel],
  )
  return row
}

/** Runs of every workflow, newest first (a WorkflowClient's list without a name). */
export async function selectAllRuns(q: Queryable, status: RunStatus | undefined, limit: number, offset: number): Promise<RunRow[]> {
  return q.query<RunRow>(
    `SELECT ${COLS} FROM _onepipe_workflows WHERE ($1::text IS NULL OR status = $1)
     ORDER BY created_at DESC, workflow_id LIMIT $2 OFFSET $3`,
    [status ?? null, limit, offset],
  )
}

export async function selectSteps(q: Queryable, id: string): Promise<StepRow[]> {
  return q.query<StepRow>(
    `SELECT step_name, status, result, error, attempts, wake_at, created_at FROM _onepipe_workflow_steps WHERE workflow_id = $1 ORDER BY created_at, step_name`,
    [id],
  )
}

/**
 * Stores the input of a client-started run as the workflow's schema parsed
 * it, with the deadline its timeout gives (counted from the start, as for
 * any run), under the lease; undefined when refused.
 */
export async function adoptInput(q: Queryable, l: Lease, input: unknown, timeoutMs: number | null): Promise<RunRow | undefined> {
  const [row] = await q.query<RunRow>(
    `UPDATE _onepipe_workflows SET input = $4::jsonb, input_checked = true, deadline_at = created_at + $5::float8 ${MS}, updated_at = now()
     WHERE workflow_id = $1 AND fence = $2 AND owner = $3 AND status = 'running'
     RETURNING ${COLS}`,
    [l.id, l.fence, l.owner, { v: input }, timeoutMs],
  )
  return row
}

/** Claims up to `limit` unowned runs that are due, bumping each fence. */
export async function claimDue(q: Queryable, names: string[], owner: string, limit: number): Promise<RunRow[]> {
  return q.query<RunRow>(
    `UPDATE _onepipe_workflows w SET status = 'running', owner = $2, fence = w.fence + 1, heartbeat_at = now(), wake_at = NULL, updated_at = now()
     FROM (SELECT workflow_id FROM _onepipe_workflows
           WHERE owner IS NULL AND ${LIVE} AND wake_at <= now() AND workflow_name = ANY($1::text[])
           ORDER BY wake_at LIMIT $3 FOR UPDATE SKIP LOCKED) c
     WHERE w.workflow_id = c.workflow_id
     RETURNING ${prefixed('w')}`,
    [names, owner, limit],
  )
}

/** Takes over owned runs whose heartbeat is older than `staleMs` (their owner died or is paused). */
export async function claimStale(q: Queryable, names: string[], owner: string, staleMs: number, limit: number): Promise<RunRow[]> {
  return q.query<RunRow>(
    `UPDATE _onepipe_workflows w SET status = 'running', owner = $2, fence = w.fence + 1, heartbeat_at = now(), wake_at = NULL, updated_at = now()
     FROM (SELECT workflow_id FROM _onepipe_workflows
           WHERE owner IS NOT NULL AND ${LIVE} AND heartbeat_at < now() - $3::float8 ${MS} AND workflow_name = ANY($1::text[])
           ORDER BY heartbeat_at LIMIT $4 FOR UPDATE SKIP LOCKED) c
     WHERE w.workflow_id = c.workflow_id
     RETURNING ${prefixed('w')}`,
    [names, owner, staleMs, limit],
  )
}

function prefixed(alias: string): string {
  return COLS.split(', ')
    .map((c) => (c.startsWith('now()') ? c : `${alias}.${c}`))
    .join(', ')
}

/** Renews the heartbeat of every run this process holds; answers the ids still held. */
export async function heartbeat(q: Queryable, owner: string, ids: string[], fences: number[]): Promise<string[]> {
  const rows = await q.query<{ workflow_id: string }>(
    `UPDATE _onepipe_workflows w SET heartbeat_at = now()
     FROM unnest($2::text[], $3::int8[]) AS h(id, fence)
     WHERE w.workflow_id = h.id AND w.fence = h.fence AND w.owner = $1 AND w.${LIVE}
     RETURNING w.workflow_id`,
    [owner, ids, fences],
  )
  return rows.map((r) => r.workflow_id)
}

const LEASE_CTE = `lease AS (SELECT workflow_id FROM _onepipe_workflows WHERE workflow_id = $1 AND fence = $2 AND owner = $3 AND status = 'running' FOR SHARE)`

/** A finished step waiting to be recorded with the run's next write. */
export interface PendingStep {
  step_name: string
  status: 'completed' | 'failed'
  result: { v?: unknown } | null
  error: SerializedError | null
  attempts: number
}

const STEP_SET = `jsonb_to_recordset($4::jsonb) AS s(step_name text, status text, result jsonb, error jsonb, attempts int)`

/** Records finished steps; false when the lease is no longer this process's (the write is refused). */
export async function insertSteps(q: Queryable, l: Lease, steps: PendingStep[]): Promise<boolean> {
  const rows = await q.query(
    `WITH ${LEASE_CTE}
     INSERT INTO _onepipe_workflow_steps (id, workflow_id, step_name, status, result, error, attempts, fence)
     SELECT $1 || '/' || s.step_name, lease.workflow_id, s.step_name, s.status, s.result, s.error, s.attempts, $2 FROM lease, ${STEP_SET}
     ON CONFLICT (workflow_id, step_name) DO NOTHING
     RETURNING step_name`,
    [l.id, l.fence, l.owner, steps],
  )
  return rows.length === steps.length
}

/**
 * Records the result of a `ctx.transaction` step inside that transaction,
 * after its writes: the lease row is share-locked until the commit, so a
 * takeover or cancel either commits first (and this answers `refused`, the
 * caller rolls back) or waits for the commit (and then sees the step).
 * `exists`: the step was recorded already, by an attempt whose commit was
 * reported failed although it happened; the caller rolls back and replays it.
 */
export async function recordTransactionStep(q: Queryable, l: Lease, step: PendingStep): Promise<'recorded' | 'exists' | 'refused'> {
  const [row] = await q.query<{ held: number; inserted: number }>(
    `WITH ${LEASE_CTE},
     ins AS (
       INSERT INTO _onepipe_workflow_steps (id, workflow_id, step_name, status, result, error, attempts, fence)
       SELECT $1 || '/' || $4, lease.workflow_id, $4, 'completed', $5::jsonb, NULL, $6, $2 FROM lease
       ON CONFLICT (workflow_id, step_name) DO NOTHING
       RETURNING 1)
     SELECT (SELECT count(*) FROM lease)::int AS held, (SELECT count(*) FROM ins)::int AS inserted`,
    [l.id, l.fence, l.owner, step.step_name, step.result, step.attempts],
  )
  if (!row || row.held === 0) return 'refused'
  return row.inserted === 1 ? 'recorded' : 'exists'
}

/**
 * Ends the transaction this runs in once it idles (between statements) for
 * longer than `ms`: a paused process cannot keep row locks of a
 * `ctx.transaction` past its lease, where they would stall the new owner.
 */
export async function limitIdleInTransaction(q: Queryable, ms: number): Promise<void> {
  await q.query(`SELECT set_config('idle_in_transaction_session_timeout', $1, true)`, [String(Math.max(1, Math.round(ms)))])
}

/** Records a sleep with its wake time taken from the database clock; undefined when refused. */
export async function insertSleep(q: Queryable, l: Lease, stepId: string, ms: number): Promise<number | undefined> {
  const [row] = await q.query<{ result: { v: number } }>(
    `WITH ${LEASE_CTE}
     INSERT INTO _onepipe_workflow_steps (id, workflow_id, step_name, status, result, fence, wake_at)
     SELECT $1 || '/' || $4, workflow_id, $4, 'completed',
            jsonb_build_object('v', floor(extract(epoch FROM now() + $5::float8 ${MS}) * 1000)::float8), $2, now() + $5::float8 ${MS}
     FROM lease
     ON CONFLICT (workflow_id, step_name) DO NOTHING
     RETURNING result`,
    [l.id, l.fence, l.owner, stepId, ms],
  )
  return row?.result.v
}

/** Records that a signal wait began, with its deadline (database clock); undefined when refused. */
export async function insertWaiting(q: Queryable, l: Lease, stepId: string, timeoutMs: number | null): Promise<{ wakeAt: Date | null } | undefined> {
  const [row] = await q.query<{ wake_at: Date | null }>(
    `WITH ${LEASE_CTE}
     INSERT INTO _onepipe_workflow_steps (id, workflow_id, step_name, status, fence, wake_at)
     SELECT $1 || '/' || $4, workflow_id, $4, 'waiting', $2, now() + $5::float8 ${MS} FROM lease
     ON CONFLICT (workflow_id, step_name) DO NOTHING
     RETURNING wake_at`,
    [l.id, l.fence, l.owner, stepId, timeoutMs],
  )
  return row ? { wakeAt: row.wake_at } : undefined
}

/**
 * Takes the oldest unconsumed signal `name` for this run and records it as
 * the step's result, in one statement: each signal goes to exactly one wait.
 */
export async function consumeSignal(q: Queryable, l: Lease, stepId: string, name: string): Promise<{ data: unknown } | undefined> {
  const [row] = await q.query<{ result: { v: unknown } }>(
    `WITH ${LEASE_CTE},
     sig AS (
       UPDATE _onepipe_workflow_signals s SET consumed_by = $1 || '/' || $4
       WHERE s.seq = (SELECT seq FROM _onepipe_workflow_signals
                      WHERE workflow_id = $1 AND name = $5 AND consumed_by IS NULL AND EXISTS (SELECT 1 FROM lease)
                      ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING s.data)
     INSERT INTO _onepipe_workflow_steps AS st (id, workflow_id, step_name, status, result, fence)
     SELECT $1 || '/' || $4, $1, $4, 'completed', sig.data, $2 FROM sig
     ON CONFLICT (workflow_id, step_name) DO UPDATE SET status = 'completed', result = EXCLUDED.result, fence = EXCLUDED.fence
       WHERE st.status = 'waiting'
     RETURNING result`,
    [l.id, l.fence, l.owner, stepId, name],
  )
  return row ? { data: row.result.v } : undefined
}

/** Turns a waiting signal step into a timed-out one (result null); false when refused. */
export async function timeoutWaiting(q: Queryable, l: Lease, stepId: string): Promise<boolean> {
  const rows = await q.query(
    `WITH ${LEASE_CTE}
     UPDATE _onepipe_workflow_steps st SET status = 'completed', result = '{"v":null,"timedOut":true}'::jsonb, fence = $2
     FROM lease WHERE st.workflow_id = lease.workflow_id AND st.step_name = $4 AND st.status = 'waiting'
     RETURNING st.step_name`,
    [l.id, l.fence, l.owner, stepId],
  )
  return rows.length > 0
}

/**
 * Gives the lease up until `wakeAt` (epoch ms, null = until woken), unless a
 * signal or child completion arrived since the run was claimed (`signal_seq`
 * moved): then the run is due at once, so no wake-up is lost.
 */
export async function releaseRun(q: Queryable, l: Lease, wakeAtMs: number | null, seenSeq: number): Promise<{ wakeAtMs: number } | undefined> {
  // Epoch ms as float8: 'infinity' (woken only by a signal) is Infinity on both engines.
  const [row] = await q.query<{ wake_ms: number }>(
    `UPDATE _onepipe_workflows SET owner = NULL, heartbeat_at = NULL, updated_at = now(),
       wake_at = CASE WHEN signal_seq = $5
                      THEN LEAST(COALESCE(to_timestamp($4::float8 / 1000), 'infinity'::timestamptz), COALESCE(deadline_at, 'infinity'::timestamptz))
                      ELSE now() END
     WHERE workflow_id = $1 AND fence = $2 AND owner = $3 AND status = 'running'
     RETURNING extract(epoch FROM wake_at)::float8 * 1000 AS wake_ms`,
    [l.id, l.fence, l.owner, wakeAtMs, seenSeq],
  )
  return row ? { wakeAtMs: Number(row.wake_ms) } : undefined
}

/** A sleep to record when its run parks: the wake time is `now() + ms` on the database clock. */
export interface PendingSleep {
  step_name: string
  ms: number
}

/**
 * Parks a run in one statement: records its last finished steps and the
 * sleeps it is parked on, and gives the lease up until the earliest wake
 * time (those sleeps, `wakeAtMs` of its other waits in epoch ms, null for
 * none, and the run's deadline). A signal or child completion since the
 * claim (`signal_seq` moved) makes it due at once, so no wake-up is lost.
 * One statement, so nobody sees a recorded sleep on a run that still looks
 * owned and busy, and a cancel or takeover lands before or after the park,
 * never between the sleep and the release. The run is released only when
 * every row was recorded; undefined when refused (lease lost, cancelled).
 */
export async function parkRun(q: Queryable, l: Lease, p: { steps: PendingStep[]; sleeps: PendingSleep[]; wakeAtMs: number | null; seenSeq: number }): Promise<{ wakeAtMs: number } | undefined> {
  const [row] = await q.query<{ wake_ms: number | null }>(
    `WITH lease AS (SELECT workflow_id FROM _onepipe_workflows WHERE workflow_id = $1 AND fence = $2 AND owner = $3 AND status = 'running' FOR NO KEY UPDATE),
     sleeps AS (
       SELECT s.step_name, now() + s.ms ${MS} AS wake_at, floor(extract(epoch FROM now() + s.ms ${MS}) * 1000)::float8 AS v
       FROM jsonb_to_recordset($5::jsonb) AS s(step_name text, ms float8)),
     ins AS (
       INSERT INTO _onepipe_workflow_steps (id, workflow_id, step_name, status, result, error, attempts, fence, wake_at)
       SELECT $1 || '/' || s.step_name, lease.workflow_id, s.step_name, s.status, s.result, s.error, s.attempts, $2, NULL::timestamptz FROM lease, ${STEP_SET}
       UNION ALL
       SELECT $1 || '/' || z.step_name, lease.workflow_id, z.step_name, 'completed', jsonb_build_object('v', z.v), NULL, 1, $2, z.wake_at FROM lease, sleeps z
       ON CONFLICT (workflow_id, step_name) DO NOTHING
       RETURNING step_name),
     run AS (
       UPDATE _onepipe_workflows w SET owner = NULL, heartbeat_at = NULL, updated_at = now(),
         wake_at = CASE WHEN w.signal_seq = $7
                        THEN LEAST(COALESCE(to_timestamp($6::float8 / 1000), 'infinity'::timestamptz),
                                   COALESCE((SELECT to_timestamp(min(v) / 1000) FROM sleeps), 'infinity'::timestamptz),
                                   COALESCE(w.deadline_at, 'infinity'::timestamptz))
                        ELSE now() END
       FROM lease
       WHERE w.workflow_id = lease.workflow_id AND (SELECT count(*) FROM ins) = $8
       RETURNING extract(epoch FROM w.wake_at)::float8 * 1000 AS wake_ms)
     SELECT (SELECT wake_ms FROM run) AS wake_ms`,
    [l.id, l.fence, l.owner, p.steps, p.sleeps, p.wakeAtMs, p.seenSeq, p.steps.length + p.sleeps.length],
  )
  return row?.wake_ms === null || row?.wake_ms === undefined ? undefined : { wakeAtMs: Number(row.wake_ms) }
}

/**
 * Ends a run (completed or failed) under its lease, recording its last
 * steps in the same statement, and wakes a waiting parent; a cancelled run
 * is left cancelled. False when refused.
 */
export async function finishRun(
  q: Queryable,
  l: Lease,
  f: { status: 'completed' | 'failed'; output: unknown; error: SerializedError | null; channel: string; steps: PendingStep[] },
): Promise<boolean> {
  const [row] = await q.query<{ done: number }>(
    `WITH done AS (
       UPDATE _onepipe_workflows SET status = $5, output = $6::jsonb, error = $8::jsonb, owner = NULL, heartbeat_at = NULL,
              wake_at = NULL, updated_at = now(), completed_at = now()
       WHERE workflow_id = $1 AND fence = $2 AND owner = $3 AND status = 'running'
       RETURNING workflow_id, parent_id),
     ins AS (
       INSERT INTO _onepipe_workflow_steps (id, workflow_id, step_name, status, result, error, attempts, fence)
       SELECT $1 || '/' || s.step_name, done.workflow_id, s.step_name, s.status, s.result, s.error, s.attempts, $2 FROM done, ${STEP_SET}
       ON CONFLICT (workflow_id, step_name) DO NOTHING
       RETURNING 1),
     ${WAKE_PARENT}
     SELECT (SELECT count(*) FROM done) AS done, (SELECT count(*) FROM ins) AS ins, (SELECT count(*) FROM parent) AS woke`,
    [l.id, l.fence, l.owner, f.steps, f.status, f.status === 'completed' ? { v: f.output } : null, f.channel, f.error],
  )
  return Number(row?.done ?? 0) > 0
}

// Reads `done(parent_id)`; $7 is the notify channel.
const WAKE_PARENT = `parent AS (
       UPDATE _onepipe_workflows p SET signal_seq = p.signal_seq + 1, updated_at = now(),
              wake_at = CASE WHEN p.owner IS NULL THEN LEAST(p.wake_at, now()) ELSE p.wake_at END
       FROM done WHERE p.workflow_id = done.parent_id AND p.${LIVE}
       RETURNING p.workflow_name, pg_notify($7, 'due:' || p.workflow_name))`

/** Cancels a live run and its live descendants; answers the runs cancelled (none for a finished run). Wakes the parent of the run. */
export async function cancelRun(q: Queryable, id: string, channel: string): Promise<{ workflow_id: string; workflow_name: string }[]> {
  return q.query<{ workflow_id: string; workflow_name: string }>(
    `WITH RECURSIVE tree AS (
       SELECT workflow_id FROM _onepipe_workflows WHERE workflow_id = $1 AND ${LIVE}
       UNION ALL
       SELECT c.workflow_id FROM _onepipe_workflows c JOIN tree t ON c.parent_id = t.workflow_id),
     done AS (
       UPDATE _onepipe_workflows SET status = 'cancelled', owner = NULL, heartbeat_at = NULL, wake_at = NULL, updated_at = now(), completed_at = now()
       WHERE workflow_id IN (SELECT workflow_id FROM tree) AND ${LIVE}
       RETURNING workflow_id, workflow_name, CASE WHEN workflow_id = $1 THEN parent_id END AS parent_id, pg_notify($2, 'cancel:' || workflow_id)),
     parent AS (
       UPDATE _onepipe_workflows p SET signal_seq = p.signal_seq + 1, updated_at = now(),
              wake_at = CASE WHEN p.owner IS NULL THEN LEAST(p.wake_at, now()) ELSE p.wake_at END
       FROM done WHERE p.workflow_id = done.parent_id AND p.${LIVE}
       RETURNING p.workflow_name, pg_notify($2, 'due:' || p.workflow_name))
     SELECT workflow_id, workflow_name, (SELECT count(*) FROM parent) AS woke FROM done`,
    [id, channel],
  )
}

/** Queues a signal for a live run and makes a sleeping run due; undefined when the run is not live. */
export async function insertSignal(q: Queryable, id: string, name: string, data: unknown, channel: string): Promise<number | undefined> {
  const [row] = await q.query<{ seq: number }>(
    `WITH run AS (
       UPDATE _onepipe_workflows SET signal_seq = signal_seq + 1, updated_at = now(),
              wake_at = CASE WHEN owner IS NULL THEN LEAST(wake_at, now()) ELSE wake_at END
       WHERE workflow_id = $1 AND ${LIVE}
       RETURNING workflow_id, workflow_name),
     ins AS (INSERT INTO _onepipe_workflow_signals (workflow_id, name, data) SELECT workflow_id, $2, $3::jsonb FROM run RETURNING seq)
     SELECT ins.seq, pg_notify($4, 'due:' || run.workflow_name) FROM ins, run`,
    [id, name, { v: data }, channel],
  )
  return row?.seq
}

/** Unconsumed signals of a run (for its detail view). */
export async function selectPendingSignals(q: Queryable, id: string): Promise<{ name: string; data: { v?: unknown }; created_at: Date }[]> {
  return q.query(`SELECT name, data, created_at FROM _onepipe_workflow_signals WHERE workflow_id = $1 AND consumed_by IS NULL ORDER BY seq`, [id])
}
