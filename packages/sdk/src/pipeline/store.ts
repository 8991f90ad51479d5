// Creating a pipeline: one transaction writes the pipeline row, all its
// stage rows (one INSERT from one JSON parameter), and wakes the workers
// parked on the handlers of its first stages. Everything after creation
// (claims, acks, the watchdog) belongs to @onepipe/pipelines.
import { ConflictError, encodeValue, type Database, type Queryable } from '@onepipe/core'
import { createHash, randomUUID } from 'node:crypto'
import type { PipelineSpec, StageSpec } from './definition.js'

/** The NOTIFY channel (schema-scoped by `db.channel`) of pipeline and stage changes; payload JSON `{ appId, pipelineId, stage?, stageStatus?, pipelineStatus? }`. */
export const CHANGES_CHANNEL = 'onepipe_pipeline_changes'

/** The NOTIFY channel (schema-scoped by `db.channel`) that says a handler has a job ready; payload `appId\thandler`. */
export const READY_CHANNEL = 'onepipe_pipeline_ready'

/**
 * What creating a pipeline answers.
 *
 * @example
 * ```ts
 * { pipelineId: '3f0…', created: true }
 * ```
 */
export interface CreatedPipeline {
  pipelineId: string
  /** False when the idempotency key named a pipeline created before (same request): that one is answered. */
  created: boolean
  /** The stages as created (absent when `created` is false): read them with the control plane then. */
  stages?: { id: string; name: string; handler: string; status: string }[]
}

/** @internal What {@link insertPipeline} writes. */
export interface NewPipeline {
  appId: string
  spec: PipelineSpec
  template?: string | undefined
  idempotencyKey?: string | undefined
  traceparent?: string | undefined
}

/** sha256 of what identifies a creation request, so the same key with another body is told apart. */
export function requestHash(appId: string, spec: PipelineSpec, template: string | undefined): string {
  return createHash('sha256').update(JSON.stringify([appId, template ?? null, spec])).digest('hex')
}

/**
 * Writes a pipeline and its stages, and wakes the pulls parked on the
 * handlers of its first stages, in one statement (atomic without a
 * transaction: one round trip, one commit). With an idempotency key
 * already used by this application: the same request answers the pipeline
 * it created; another request is a 409.
 *
 * @throws ConflictError 409 `IDEMPOTENCY_KEY_REUSED`
 */
export async function insertPipeline(db: Database, p: NewPipeline): Promise<CreatedPipeline> {
  const hash = requestHash(p.appId, p.spec, p.template)
  const id = randomUUID()
  const stages = p.spec.stages.map((s, position) => stageRow(s, position))
  const [row] = await db.query<{ pipeline_id: string | null; stages: { id: string; name: string; handler: string; status: string; position: number }[] }>(
    `WITH p AS (
       INSERT INTO _onepipe_pipelines (id, app_id, name, template, status, keywords, input, context, idempotency_key, request_hash, traceparent)
       VALUES ($1, $2, $3, $4, 'Running', $5::text[], $6::text::jsonb, $7::text::jsonb, $8, $9, $10)
       ON CONFLICT (app_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
       RETURNING id
     ), s AS (
       INSERT INTO _onepipe_pipeline_stages
         (id, pipeline_id, app_id, position, name, handler, input, depends_on, parallel_with, waiting_on, max_retries,
          retry_interval_ms, max_retry_interval_ms, backoff, timeout_ms, run_next_if_failed, requires_approval, status, ready_at)
       SELECT x.id, p.id, $2, x.position, x.name, x.handler, x.input,
              ARRAY(SELECT jsonb_array_elements_text(x.depends_on)), ARRAY(SELECT jsonb_array_elements_text(x.parallel_with)),
              x.waiting_on, x.max_retries, x.retry_interval_ms, x.max_retry_interval_ms, x.backoff, x.timeout_ms,
              x.run_next_if_failed, x.requires_approval,
              CASE WHEN x.waiting_on > 0 THEN 'NotStarted' WHEN x.requires_approval THEN 'AwaitingApproval' ELSE 'Pending' END,
              CASE WHEN x.waiting_on = 0 AND NOT x.requires_approval THEN now() END
         FROM p, jsonb_to_recordset($11::text::jsonb) AS x(id uuid, position int, name text, handler text, input jsonb, depends_on jsonb,
              parallel_with jsonb, waiting_on int, max_retries int, retry_interval_ms int, max_retry_interval_ms int, backoff text,
              timeout_ms int, run_next_if_failed boolean, requires_approval boolean)
       RETURNING id, name, handler, status, position
     ), n AS (
       SELECT pg_notify($12, $2 || chr(9) || h.handler) FROM (SELECT DISTINCT handler FROM s WHERE status = 'Pending') h
     ), c AS (
       -- Live subscribers (the dashboard) see the new pipeline, published only while one exists anywhere.
       SELECT pg_notify($13, json_build_object('appId', $2::text, 'pipelineId', p.id, 'pipelineStatus', 'Running')::text) FROM p
        WHERE EXISTS (SELECT 1 FROM _onepipe_pipeline_listeners WHERE until > now())
     )
     SELECT (SELECT id FROM p) AS pipeline_id, (SELECT count(*) FROM n) + (SELECT count(*) FROM c) AS woken,
            coalesce((SELECT jsonb_agg(jsonb_build_object('id', id, 'name', name, 'handler', handler, 'status', status, 'position', position)) FROM s), '[]'::jsonb) AS stages`,
    [
      id,
      p.appId,
      p.spec.name,
      p.template ?? null,
      p.spec.keywords,
      p.spec.input === undefined ? null : encodeValue(p.spec.input, { subject: 'pipeline input' }),
      encodeValue(p.spec.context, { subject: 'pipeline context' }),
      p.idempotencyKey ?? null,
      hash,
      p.traceparent ?? null,
      JSON.stringify(stages),
      db.channel(READY_CHANNEL),
      db.channel(CHANGES_CHANNEL),
    ],
  )
  if (row?.pipeline_id) {
    const created = [...row.stages].sort((a, b) => a.position - b.position).map(({ id: sid, name, handler, status }) => ({ id: sid, name, handler, status }))
    return { pipelineId: row.pipeline_id, created: true, stages: created }
  }
  const prior = await pipelineByKey(db, p.appId, p.idempotencyKey ?? '')
  if (!prior) throw new ConflictError('IDEMPOTENCY_KEY_REUSED', 'The Idempotency-Key was used by a request that is still being written; send it again')
  if (prior.request_hash !== hash) throw new ConflictError('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key created another pipeline with a different request; use a new key for a new pipeline')
  return { pipelineId: prior.id, created: false }
}

/**
 * @internal A stage as the JSON row the stage INSERTs read (jsonb_to_recordset), waiting on all its dependencies.
 */
export function stageRow(s: StageSpec, position: number): Record<string, unknown> {
  return {
    id: randomUUID(),
    position,
    name: s.name,
    handler: s.handler,
    input: s.input === undefined ? null : (JSON.parse(encodeValue(s.input, { subject: `input of stage "${s.name}"` })) as unknown),
    depends_on: s.dependsOn,
    parallel_with: s.parallelWith,
    waiting_on: s.dependsOn.length,
    max_retries: s.maxRetries,
    retry_interval_ms: s.retryIntervalMs,
    max_retry_interval_ms: s.maxRetryIntervalMs,
    backoff: s.backoff,
    timeout_ms: s.timeoutMs,
    run_next_if_failed: s.runNextIfFailed,
    requires_approval: s.requiresApproval,
  }
}

async function pipelineByKey(q: Queryable, appId: string, key: string): Promise<{ id: string; request_hash: string } | undefined> {
  const [row] = await q.query<{ id: string; request_hash: string }>('SELECT id, request_hash FROM _onepipe_pipelines WHERE app_id = $1 AND idempotency_key = $2', [appId, key])
  return row
}

/**
 * Wakes the long-polls parked on `handlers` of `appId` in every process
 * (delivered at commit when `q` is a transaction).
 */
export async function notifyReady(q: Queryable, channel: string, appId: string, handlers: readonly string[]): Promise<void> {
  if (handlers.length === 0) return
  await q.execute('SELECT pg_notify($1, $2 || chr(9) || h) FROM unnest($3::text[]) AS h', [channel, appId, handlers])
}
