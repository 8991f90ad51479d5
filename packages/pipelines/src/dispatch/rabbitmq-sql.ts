// The statements of RabbitMQ dispatch: the settings lease that turns the
// outbox trigger on (000012_pipeline_outbox.sql), the outbox relay's claim
// and delete, and the claim of stages named by delivered messages. No AMQP
// here, so the engine may import it without loading the broker client.
import type { Queryable } from '@onepipe/core'
import { claimQuery, type ClaimedRow } from '../engine/sql.js'

/**
 * A message waiting in the outbox.
 *
 * @example
 * ```ts
 * { id: 42, app_id: '9c…', handler: 'vision.analyze', stage_id: '3f…' }
 * ```
 */
export interface OutboxRow {
  id: number
  app_id: string
  handler: string
  stage_id: string
}

/**
 * Renews the lease that keeps the outbox trigger writing (every RabbitMQ
 * control plane renews it; it runs out `leaseMs` after the last one
 * stopped), and the lease of the one control plane that forwards live
 * updates to the broker. Answers whether `me` holds the latter.
 *
 * @example
 * ```ts
 * const forwardsChanges = await renewSettings(db, db.channel('onepipe_pipeline_outbox'), instanceId, 60_000)
 * ```
 */
export async function renewSettings(q: Queryable, relayChannel: string, me: string, leaseMs: number): Promise<boolean> {
  const [row] = await q.query<{ owner: boolean }>(
    `UPDATE _onepipe_pipeline_settings
        SET rabbitmq_until = greatest(rabbitmq_until, now() + $3::float8 * interval '1 millisecond'), relay_channel = $1,
            changes_owner = CASE WHEN changes_owner = $2 OR changes_until IS NULL OR changes_until < now() THEN $2 ELSE changes_owner END,
            changes_until = CASE WHEN changes_owner = $2 OR changes_until IS NULL OR changes_until < now()
                                 THEN now() + $3::float8 / 4 * interval '1 millisecond' ELSE changes_until END
      RETURNING changes_owner = $2 AS owner`,
    [relayChannel, me, leaseMs],
  )
  return row?.owner === true
}

/**
 * Gives up forwarding live updates at stop, so another control plane takes
 * over at its next renewal instead of when the lease runs out.
 *
 * @example
 * ```ts
 * await releaseChangesOwner(db, instanceId)
 * ```
 */
export async function releaseChangesOwner(q: Queryable, me: string): Promise<void> {
  await q.execute(`UPDATE _onepipe_pipeline_settings SET changes_until = NULL WHERE changes_owner = $1`, [me])
}

/**
 * Locks up to `limit` outbox rows no other relay holds (SKIP LOCKED): the
 * caller publishes them and deletes them in the same transaction.
 *
 * @example
 * ```ts
 * await db.transaction(async (tx) => { const rows = await claimOutbox(tx, 500); … })
 * ```
 */
export async function claimOutbox(q: Queryable, limit: number): Promise<OutboxRow[]> {
  const rows = await q.query<OutboxRow>(`SELECT id, app_id, handler, stage_id FROM _onepipe_pipeline_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, [limit])
  return rows.map((r) => ({ ...r, id: Number(r.id) }))
}

/**
 * Deletes published outbox rows.
 *
 * @example
 * ```ts
 * await deleteOutbox(tx, [41, 42])
 * ```
 */
export async function deleteOutbox(q: Queryable, ids: readonly number[]): Promise<number> {
  if (ids.length === 0) return 0
  return q.execute(`DELETE FROM _onepipe_pipeline_outbox WHERE id = ANY($1::bigint[])`, [ids])
}

/**
 * Hands the stages named by delivered messages to one worker, each only if
 * it is still Pending and not being changed by another transaction (SKIP
 * LOCKED): a message for a stage already claimed, cancelled or claimed by
 * another replica claims nothing. Each claimed stage gets a new execution
 * id, a lease, a deadline with a timeout, and its attempt row, exactly as
 * `claimStages` in engine/sql.ts does for the oldest ready stages.
 *
 * @example
 * ```ts
 * const rows = await claimStagesById(db, appId, [stageId], workerId, 30_000)
 * ```
 */
export async function claimStagesById(q: Queryable, appId: string, stageIds: readonly string[], workerId: string | null, leaseMs: number): Promise<ClaimedRow[]> {
  if (stageIds.length === 0) return []
  return q.query<ClaimedRow>(
    claimQuery(`SELECT id, ready_at FROM _onepipe_pipeline_stages WHERE id = ANY($2::uuid[]) AND app_id = $1 AND status = 'Pending' LIMIT $3 FOR UPDATE SKIP LOCKED`),
    [appId, stageIds, stageIds.length, workerId, leaseMs],
  )
}
