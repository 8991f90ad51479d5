// Creating a pipeline: one transaction writes the pipeline row, all its
// stage rows (one INSERT from one JSON parameter), and wakes the workers
// parked on the handlers of its first stages. Everything after creation
// (claims, acks, the watchdog) belongs to @onepipe/pipelines.
import { ConflictError, encodeValue, type Database, type Queryable } from '@onepipe/core'
import { createHash, randomUUID } from 'node:crypto'
import type { PipelineSpec, StageSpec } from './definition.js'

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
 * Writes a pipeline and its stages in one transaction. With an idempotency
 * key already used by this application: the same request answers the
 * pipeline it created; another request is a 409.
 *
 * @throws ConflictError 409 `IDEMPOTENCY_KEY_REUSED`
 */
export async function insertPipeline(db: Database, p: NewPipeline): Promise<CreatedPipeline> {
  const hash = requestHash(p.appId, p.spec, p.template)
  const id = randomUUID()
  const stages = p.spec.stages.map((s, position) => stageRow(s, position))
  return db.transaction(async (tx) => {
    const inserted = await insertPipelineRow(tx, id, p, hash)
    if (!inserted) {
      const prior = await pipelineByKey(tx, p.appId, p.idempotencyKey ?? '')
      if (!prior) throw new ConflictError('IDEMPOTENCY_KEY_REUSED', 'The Idempotency-Key was used by a request that is still being written; send it again')
      if (prior.request_hash !== hash) throw new ConflictError('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key created another pipeline with a different request; use a new key for a new pipeline')
      return { pipelineId: prior.id, created: false }
    }
    const rows = await insertStages(tx, id, p.appId, JSON.stringify(stages))
    await notifyReady(tx, db.channel(READY_CHANNEL), p.appId, [...new Set(rows.filter((r) => r.status === 'Pending').map((r) => r.handler))])
    return { pipelineId: id, created: true, stages: rows }
  })
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

async function insertPipelineRow(q: Queryable, id: string, p: NewPipeline, hash: string): Promise<boolean> {
  const rows = await q.query(
    `INSERT INTO _onepipe_pipelines (id, app_id, name, template, status, keywords, input, context, idempotency_key, request_hash, traceparent)
     VALUES ($1, $2, $3, $4, 'Running', $5::text[], $6::text::jsonb, $7::text::jsonb, $8, $9, $10)
     ON CONFLICT (app_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
     RETURNING id`,
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
    ],
  )
  return rows.length > 0
}

async function pipelineByKey(q: Queryable, appId: string, key: string): Promise<{ id: string; request_hash: string } | undefined> {
  const [row] = await q.query<{ id: string; request_hash: string }>('SELECT id, request_hash FROM _onepipe_pipelines WHERE app_id = $1 AND idempotency_key = $2', [appId, key])
  return row
}

/** Inserts every stage from one JSON array; answers them in order with their first status. */
async function insertStages(q: Queryable, pipelineId: string, appId: string, stagesJson: string): Promise<{ id: string; name: string; handler: string; status: string }[]> {
  const rows = await q.query<{ id: string; name: string; handler: string; status: string; position: number }>(
    `INSERT INTO _onepipe_pipeline_stages
       (id, pipeline_id, app_id, position, name, handler, input, depends_on, parallel_with, waiting_on, max_retries,
        retry_interval_ms, max_retry_interval_ms, backoff, timeout_ms, run_next_if_failed, requires_approval, status, ready_at)
     SELECT s.id, $1, $2, s.position, s.name, s.handler, s.input,
            ARRAY(SELECT jsonb_array_elements_text(s.depends_on)), ARRAY(SELECT jsonb_array_elements_text(s.parallel_with)),
            s.waiting_on, s.max_retries, s.retry_interval_ms, s.max_retry_interval_ms, s.backoff, s.timeout_ms,
            s.run_next_if_failed, s.requires_approval,
            CASE WHEN s.waiting_on > 0 THEN 'NotStarted' WHEN s.requires_approval THEN 'AwaitingApproval' ELSE 'Pending' END,
            CASE WHEN s.waiting_on = 0 AND NOT s.requires_approval THEN now() END
       FROM jsonb_to_recordset($3::text::jsonb) AS s(id uuid, position int, name text, handler text, input jsonb, depends_on jsonb,
            parallel_with jsonb, waiting_on int, max_retries int, retry_interval_ms int, max_retry_interval_ms int, backoff text,
            timeout_ms int, run_next_if_failed boolean, requires_approval boolean)
     RETURNING id, name, handler, status, position`,
    [pipelineId, appId, stagesJson],
  )
  return rows.sort((a, b) => a.position - b.position).map(({ id, name, handler, status }) => ({ id, name, handler, status }))
}

/**
 * Wakes the long-polls parked on `handlers` of `appId` in every process
 * (delivered at commit when `q` is a transaction).
 */
export async function notifyReady(q: Queryable, channel: string, appId: string, handlers: readonly string[]): Promise<void> {
  if (handlers.length === 0) return
  await q.execute('SELECT pg_notify($1, $2 || chr(9) || h) FROM unnest($3::text[]) AS h', [channel, appId, handlers])
}
