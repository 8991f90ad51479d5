import { Cron, type Database, type Pipeline } from '@onepipe/sdk'
import type { BlueprintMime } from './contracts.js'
import { startAnalysis, type BlueprintEvents } from './blueprints.js'
import type { WorkersApplication } from './setup.js'

/** Re-queues of one blueprint after which it is left failed for a person to look at. */
export const MAX_REQUEUES = 3

/**
 * Every morning at 9 (`PIPELINEOS_TZ`, default UTC), once across all
 * instances: blueprints whose analysis failed or went quiet for more than an
 * hour, and uploads whose analysis never started, get a new analysis run
 * (each re-queue its own pipeline, idempotent by blueprint and re-queue
 * number), up to {@link MAX_REQUEUES} times per blueprint.
 *
 * @example
 * ```ts
 * const requeue = createRequeueCron(db, { analysis, workers, events })
 * ```
 */
export function createRequeueCron(db: Database, d: { analysis: Pipeline; workers: WorkersApplication; events: BlueprintEvents; timezone?: string }) {
  return Cron.create('blueprint-requeue')
    .schedule('0 9 * * *')
    .timezone(d.timezone ?? 'UTC')
    .db(db)
    .handler(async (ctx) => {
      const stuck = await ctx.db.query<{ id: string; mime: BlueprintMime; size_bytes: number; sha256: string; requeues: number }>(
        `SELECT id, mime, size_bytes, sha256, requeues FROM blueprints
         WHERE ((status IN ('failed', 'analyzing') AND requeues < $1) OR (status = 'pending' AND pipeline_id IS NULL))
           AND updated_at < now() - interval '1 hour'
         ORDER BY updated_at LIMIT 100`,
        [MAX_REQUEUES],
      )
      const requeued: string[] = []
      for (const b of stuck) {
        const attempt = b.requeues + 1
        const pipelineId = await startAnalysis(d.analysis, d.workers, { blueprintId: b.id, mime: b.mime, sizeBytes: b.size_bytes, sha256: b.sha256 }, attempt)
        await ctx.db.transaction(async (tx) => {
          await tx.execute("UPDATE blueprints SET status = 'pending', pipeline_id = $2, requeues = $3, error = NULL, updated_at = now() WHERE id = $1", [b.id, pipelineId, attempt])
          await d.events.appendIn(tx, { type: 'blueprint.status', blueprintId: b.id, status: 'pending', at: new Date().toISOString() })
        })
        requeued.push(b.id)
      }
      return { requeued }
    })
    .build()
}
