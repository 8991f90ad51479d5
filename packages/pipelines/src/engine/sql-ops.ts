// Reads and operator actions on pipelines: get, list, cancel, rerun, skip,
// approval, append, logs. Same lock order as sql.ts: pipeline, then stages.
import type { Queryable } from '@onepipe/core'
import type { StageRow } from './sql.js'

/** A pipeline row as read. */
export interface PipelineRow {
  id: string
  app_id: string
  name: string
  template: string | null
  status: string
  keywords: string[]
  input: unknown
  context: Record<string, unknown>
  idempotency_key: string | null
  created_at: Date
  updated_at: Date
  finished_at: Date | null
}

/** One attempt of a stage. */
export interface AttemptRow {
  execution_id: string
  stage_id: string
  attempt: number
  worker_id: string | null
  started_at: Date
  ended_at: Date | null
  outcome: string | null
  error: unknown
}

export async function pipelineById(q: Queryable, appId: string | null, id: string): Promise<PipelineRow | undefined> {
  const [row] = await q.query<PipelineRow>(`SELECT * FROM _onepipe_pipelines WHERE id = $1 AND ($2::text IS NULL OR app_id = $2)`, [id, appId])
  return row
}

export async function stagesOf(q: Queryable, pipelineId: string): Promise<StageRow[]> {
  return q.query<StageRow>(`SELECT * FROM _onepipe_pipeline_stages WHERE pipeline_id = $1 ORDER BY position`, [pipelineId])
}

export async function attemptsOf(q: Queryable, pipelineId: string): Promise<AttemptRow[]> {
  return q.query<AttemptRow>(
    `SELECT a.execution_id, a.stage_id, a.attempt, a.worker_id, a.started_at, a.ended_at, a.outcome, a.error
       FROM _onepipe_stage_attempts a JOIN _onepipe_pipeline_stages s ON s.id = a.stage_id
      WHERE s.pipeline_id = $1 ORDER BY a.started_at`,
    [pipelineId],
  )
}

/** The newest pipelines first, optionally of one application and status; `before` pages by creation time. */
export async function listPipelines(q: Queryable, f: { appId: string | null; status: string | null; limit: number; before: Date | null }): Promise<PipelineRow[]> {
  return q.query<PipelineRow>(
    `SELECT * FROM _onepipe_pipelines WHERE ($1::text IS NULL OR app_id = $1) AND ($2::text IS NULL OR status = $2)
        AND ($4::timestamptz IS NULL OR created_at < $4) ORDER BY created_at DESC LIMIT $3`,
    [f.appId, f.status, f.limit, f.before],
  )
}

/** Cancels every stage not yet final; running attempts end as `cancelled`. */
export async function cancelStages(q: Queryable, pipelineId: string): Promise<void> {
  await q.execute(
    `WITH s AS (
       UPDATE _onepipe_pipeline_stages SET status = 'Cancelled', finished_at = now(), lease_expires_at = NULL, updated_at = now()
        WHERE pipeline_id = $1 AND status NOT IN ('Completed', 'Failed', 'Skipped', 'Cancelled')
       RETURNING id, execution_id, status
     )
     UPDATE _onepipe_stage_attempts a SET outcome = 'cancelled', ended_at = now()
       FROM s WHERE a.execution_id = s.execution_id AND a.outcome IS NULL`,
    [pipelineId],
  )
}

export async function setPipelineStatus(q: Queryable, pipelineId: string, status: string, final: boolean): Promise<void> {
  await q.execute(
    `UPDATE _onepipe_pipelines SET status = $2, finished_at = CASE WHEN $3 THEN now() ELSE NULL END, updated_at = now() WHERE id = $1`,
    [pipelineId, status, final],
  )
}

/** A stage row locked (after its pipeline), scoped to an application. */
export async function lockStage(q: Queryable, appId: string | null, stageId: string): Promise<StageRow | undefined> {
  const [row] = await q.query<StageRow>(`SELECT * FROM _onepipe_pipeline_stages WHERE id = $1 AND ($2::text IS NULL OR app_id = $2) FOR UPDATE`, [stageId, appId])
  return row
}

/** The pipeline id of a stage, unlocked (to lock the pipeline first). */
export async function pipelineOfStage(q: Queryable, appId: string | null, stageId: string): Promise<string | undefined> {
  const [row] = await q.query<{ pipeline_id: string }>(`SELECT pipeline_id FROM _onepipe_pipeline_stages WHERE id = $1 AND ($2::text IS NULL OR app_id = $2)`, [stageId, appId])
  return row?.pipeline_id
}

/**
 * Makes a stage ready again (rerun or approval); a running attempt of it
 * ends as `superseded`. A rerun (`fresh`) starts its retries over.
 */
export async function makeReady(q: Queryable, stageId: string, fresh = false): Promise<void> {
  await q.execute(
    `WITH old AS (SELECT execution_id FROM _onepipe_pipeline_stages WHERE id = $1 AND status = 'Running'),
          a AS (UPDATE _onepipe_stage_attempts SET outcome = 'superseded', ended_at = now() WHERE execution_id IN (SELECT execution_id FROM old) AND outcome IS NULL)
     UPDATE _onepipe_pipeline_stages SET status = 'Pending', ready_at = now(), waiting_on = 0, error = NULL, output = NULL,
            finished_at = NULL, lease_expires_at = NULL, deadline_at = NULL, updated_at = now(),
            attempt = CASE WHEN $2 THEN 0 ELSE attempt END, lease_expiries = CASE WHEN $2 THEN 0 ELSE lease_expiries END
      WHERE id = $1`,
    [stageId, fresh],
  )
}

/** Every stage after `name` (transitively) goes back to NotStarted, waiting on its dependencies that are not Completed. */
export async function resetFollowing(q: Queryable, pipelineId: string, name: string): Promise<void> {
  await q.execute(
    `WITH RECURSIVE dep(name) AS (
       SELECT s.name FROM _onepipe_pipeline_stages s WHERE s.pipeline_id = $1 AND $2 = ANY(s.depends_on)
       UNION
       SELECT s.name FROM _onepipe_pipeline_stages s JOIN dep ON dep.name = ANY(s.depends_on) WHERE s.pipeline_id = $1
     ), old AS (
       SELECT execution_id FROM _onepipe_pipeline_stages WHERE pipeline_id = $1 AND name IN (SELECT name FROM dep) AND status = 'Running'
     ), a AS (
       UPDATE _onepipe_stage_attempts SET outcome = 'superseded', ended_at = now() WHERE execution_id IN (SELECT execution_id FROM old) AND outcome IS NULL
     )
     UPDATE _onepipe_pipeline_stages s SET status = 'NotStarted', output = NULL, error = NULL, finished_at = NULL, ready_at = NULL,
            lease_expires_at = NULL, deadline_at = NULL, updated_at = now(),
            waiting_on = (SELECT count(*) FROM _onepipe_pipeline_stages d WHERE d.pipeline_id = $1 AND d.name = ANY(s.depends_on)
                           AND (d.name = $2 OR d.name IN (SELECT name FROM dep) OR d.status NOT IN ('Completed')))
      WHERE s.pipeline_id = $1 AND s.name IN (SELECT name FROM dep)`,
    [pipelineId, name],
  )
}

/** Sets a stage's final status by an operator (skip) or a rejection. */
export async function finishStage(q: Queryable, stageId: string, status: 'Skipped' | 'Failed', errorJson: string | null, approvalJson: string | null): Promise<void> {
  await q.execute(
    `WITH old AS (SELECT execution_id FROM _onepipe_pipeline_stages WHERE id = $1 AND status = 'Running'),
          a AS (UPDATE _onepipe_stage_attempts SET outcome = 'superseded', ended_at = now() WHERE execution_id IN (SELECT execution_id FROM old) AND outcome IS NULL)
     UPDATE _onepipe_pipeline_stages SET status = $2, error = $3::text::jsonb, approval = coalesce($4::text::jsonb, approval), finished_at = now(),
            lease_expires_at = NULL, deadline_at = NULL, updated_at = now()
      WHERE id = $1`,
    [stageId, status, errorJson, approvalJson],
  )
}

export async function recordApproval(q: Queryable, stageId: string, approvalJson: string): Promise<void> {
  await q.execute(`UPDATE _onepipe_pipeline_stages SET approval = $2::text::jsonb WHERE id = $1`, [stageId, approvalJson])
}

/** Inserts appended stages (JSON array of rows with their computed status); answers the handlers made ready. */
export async function insertAppended(q: Queryable, pipelineId: string, appId: string, stagesJson: string): Promise<string[]> {
  const rows = await q.query<{ handler: string; status: string }>(
    `INSERT INTO _onepipe_pipeline_stages
       (id, pipeline_id, app_id, position, name, handler, input, depends_on, parallel_with, waiting_on, max_retries,
        retry_interval_ms, max_retry_interval_ms, backoff, timeout_ms, run_next_if_failed, requires_approval, status, ready_at, finished_at)
     SELECT s.id, $1, $2, s.position, s.name, s.handler, s.input,
            ARRAY(SELECT jsonb_array_elements_text(s.depends_on)), ARRAY(SELECT jsonb_array_elements_text(s.parallel_with)),
            s.waiting_on, s.max_retries, s.retry_interval_ms, s.max_retry_interval_ms, s.backoff, s.timeout_ms,
            s.run_next_if_failed, s.requires_approval, s.status,
            CASE WHEN s.status = 'Pending' THEN now() END, CASE WHEN s.status = 'Skipped' THEN now() END
       FROM jsonb_to_recordset($3::text::jsonb) AS s(id uuid, position int, name text, handler text, input jsonb, depends_on jsonb,
            parallel_with jsonb, waiting_on int, max_retries int, retry_interval_ms int, max_retry_interval_ms int, backoff text,
            timeout_ms int, run_next_if_failed boolean, requires_approval boolean, status text)
     RETURNING handler, status`,
    [pipelineId, appId, stagesJson],
  )
  return [...new Set(rows.filter((r) => r.status === 'Pending').map((r) => r.handler))]
}

/** Appends log lines (one JSON array parameter). */
export async function insertLogs(q: Queryable, appId: string, pipelineId: string, entriesJson: string): Promise<void> {
  await q.execute(
    `INSERT INTO _onepipe_pipeline_logs (app_id, pipeline_id, stage_id, execution_id, level, message, fields, at)
     SELECT $1, $2, e.stage_id, e.execution_id, e.level, e.message, e.fields, coalesce(e.at, now())
       FROM jsonb_to_recordset($3::text::jsonb) AS e(stage_id uuid, execution_id uuid, level text, message text, fields jsonb, at timestamptz)`,
    [appId, pipelineId, entriesJson],
  )
}

/** The stage and pipeline an attempt belongs to (any attempt, current or not), scoped to an application. */
export async function attemptOwner(q: Queryable, appId: string, executionId: string): Promise<{ stage_id: string; pipeline_id: string } | undefined> {
  const [row] = await q.query<{ stage_id: string; pipeline_id: string }>(
    `SELECT s.id AS stage_id, s.pipeline_id FROM _onepipe_stage_attempts a JOIN _onepipe_pipeline_stages s ON s.id = a.stage_id WHERE a.execution_id = $2 AND a.app_id = $1`,
    [appId, executionId],
  )
  return row
}

export async function logsOf(q: Queryable, pipelineId: string, after: number, limit: number): Promise<{ id: number; stage_id: string | null; execution_id: string | null; level: string; message: string; fields: unknown; at: Date }[]> {
  return q.query(
    `SELECT id, stage_id, execution_id, level, message, fields, at FROM _onepipe_pipeline_logs WHERE pipeline_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
    [pipelineId, after, limit],
  )
}
