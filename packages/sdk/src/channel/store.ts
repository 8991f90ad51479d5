// Idempotency rows and call history; one SQL operation per function, every
// lease and expiry on the database clock.
import type { Queryable, SerializedError } from '@onepipe/core'

/** The state of a key someone else holds (or held). */
export interface KeyRow {
  inputHash: string
  status: 'pending' | 'completed' | 'failed'
  /** The stored result as JSON text; null when the handler returned nothing. */
  result: string | null
  error: SerializedError | null
  leaseMsLeft: number
  /** The row outlived `expires_at`: the key is free to claim again. */
  expired: boolean
}

export type ClaimResult = { claimed: true } | { claimed: false; row: KeyRow | undefined }

interface KeyRowSql {
  claimed: boolean
  input_hash: string
  status: KeyRow['status']
  result: string | null
  error: SerializedError | null
  lease_ms_left: number | null
  expired: boolean
}

/**
 * Claims a new key by inserting a `pending` row owned by `owner`, or answers
 * the existing row. ON CONFLICT DO NOTHING takes no lock on the existing
 * row, so replays of one hot key do not queue behind each other. No row
 * at all means a concurrent claim committed after this statement's
 * snapshot: the caller asks again.
 */
export async function claimKey(
  q: Queryable,
  a: { channel: string; key: string; hash: string; owner: string; leaseMs: number; ttlMs: number },
): Promise<ClaimResult> {
  const rows = await q.query<KeyRowSql>(
    `WITH c AS (
       INSERT INTO _onepipe_channel_idempotency (channel_name, idempotency_key, input_hash, status, owner, lease_expires_at, expires_at)
       VALUES ($1, $2, $3, 'pending', $4, now() + make_interval(secs => $5::float8 / 1000), now() + make_interval(secs => $6::float8 / 1000))
       ON CONFLICT (channel_name, idempotency_key) DO NOTHING
       RETURNING 1
     )
     SELECT true AS claimed, NULL::text AS input_hash, NULL::text AS status, NULL::text AS result, NULL::jsonb AS error, NULL::float8 AS lease_ms_left, false AS expired FROM c
     UNION ALL
     SELECT false, input_hash, status, result::text, error, extract(epoch FROM (lease_expires_at - now())) * 1000, expires_at <= now()
     FROM _onepipe_channel_idempotency
     WHERE channel_name = $1 AND idempotency_key = $2 AND NOT EXISTS (SELECT 1 FROM c)`,
    [a.channel, a.key, a.hash, a.owner, a.leaseMs, a.ttlMs],
  )
  const r = rows[0]
  if (r?.claimed) return { claimed: true }
  if (!r) return { claimed: false, row: undefined }
  return { claimed: false, row: { inputHash: r.input_hash, status: r.status, result: r.result, error: r.error, leaseMsLeft: Number(r.lease_ms_left ?? 0), expired: r.expired } }
}

/**
 * Takes over a key that expired, or a pending key with the same input whose
 * owner's lease ran out (the owner died). The row lock makes one claimant win.
 */
export async function takeOverKey(
  q: Queryable,
  a: { channel: string; key: string; hash: string; owner: string; leaseMs: number; ttlMs: number },
): Promise<boolean> {
  const n = await q.execute(
    `UPDATE _onepipe_channel_idempotency
     SET input_hash = $3, status = 'pending', owner = $4, lease_expires_at = now() + make_interval(secs => $5::float8 / 1000),
         expires_at = now() + make_interval(secs => $6::float8 / 1000), result = NULL, error = NULL, created_at = now()
     WHERE channel_name = $1 AND idempotency_key = $2
       AND (expires_at <= now() OR (status = 'pending' AND lease_expires_at <= now() AND input_hash = $3))`,
    [a.channel, a.key, a.hash, a.owner, a.leaseMs, a.ttlMs],
  )
  return n === 1
}

/**
 * Asks the owner of a pending key to NOTIFY when it is done. Answers the
 * owner's remaining lease, or undefined when the key is no longer pending
 * (finished meanwhile: look again).
 */
export async function markWaiting(q: Queryable, channel: string, key: string): Promise<number | undefined> {
  const [r] = await q.query<{ left: number }>(
    `UPDATE _onepipe_channel_idempotency SET waiters = true
     WHERE channel_name = $1 AND idempotency_key = $2 AND status = 'pending'
     RETURNING extract(epoch FROM (lease_expires_at - now())) * 1000 AS left`,
    [channel, key],
  )
  return r ? Number(r.left) : undefined
}

/** Extends the owner's lease while its handler runs; false once the row is no longer this owner's. */
export async function renewKey(q: Queryable, channel: string, key: string, owner: string, leaseMs: number): Promise<boolean> {
  const n = await q.execute(
    `UPDATE _onepipe_channel_idempotency SET lease_expires_at = now() + make_interval(secs => $4::float8 / 1000)
     WHERE channel_name = $1 AND idempotency_key = $2 AND owner = $3 AND status = 'pending'`,
    [channel, key, owner, leaseMs],
  )
  return n === 1
}

/** What the owner records when it is done, with the history row and the wake-up for waiters. */
export interface Outcome {
  channel: string
  key: string
  owner: string
  notifyChannel: string
  notifyPayload: string
  status: 'completed' | 'failed' | 'released'
  /** JSON text of the result (completed). */
  result: string | null
  error: SerializedError | null
  attempts: number
  durationMs: number
}

/**
 * Finishes an owned key in one statement: stores the result (`completed`),
 * the terminal error (`failed`), or deletes the row (`released`, after a
 * retryable failure, so a later call may try again); appends the history
 * row and notifies waiters. Answers whether the row was still ours.
 */
export async function finishKey(q: Queryable, o: Outcome): Promise<boolean> {
  const [r] = await q.query<{ ours: boolean }>(
    `WITH u AS (
       UPDATE _onepipe_channel_idempotency SET status = $4, result = ($5::text)::jsonb, error = $6::jsonb, lease_expires_at = NULL
       WHERE channel_name = $1 AND idempotency_key = $2 AND owner = $3 AND status = 'pending' AND $4 <> 'released'
       -- The row's latest version (re-read under the row lock): a waiter that committed just before is seen.
       RETURNING waiters
     ), d AS (
       DELETE FROM _onepipe_channel_idempotency
       WHERE channel_name = $1 AND idempotency_key = $2 AND owner = $3 AND status = 'pending' AND $4 = 'released'
       RETURNING waiters
     ), h AS (
       INSERT INTO _onepipe_channel_calls (channel_name, idempotency_key, status, attempts, duration_ms, error)
       VALUES ($1, $2, CASE WHEN $4 = 'completed' THEN 'completed' ELSE 'failed' END, $7, $8, $6::jsonb)
     ), w AS (
       SELECT waiters FROM u UNION ALL SELECT waiters FROM d
     )
     -- NOTIFY only when a duplicate is waiting: it serializes commits database-wide.
     SELECT EXISTS (SELECT 1 FROM w) AS ours, (SELECT count(pg_notify($9, $10)) FROM w WHERE waiters) AS notified`,
    [o.channel, o.key, o.owner, o.status, o.result, o.error, o.attempts, o.durationMs, o.notifyChannel, o.notifyPayload],
  )
  return r?.ours ?? false
}

/**
 * Appends a history row: for a call without an idempotency key, or for a
 * transactional call whose handler failed in a way that left its key free
 * (the rollback took the row written with the outcome along).
 */
export async function recordCall(
  q: Queryable,
  a: { channel: string; key?: string; status: 'completed' | 'failed'; attempts: number; durationMs: number; error: SerializedError | null },
): Promise<void> {
  await q.execute(
    `INSERT INTO _onepipe_channel_calls (channel_name, idempotency_key, status, attempts, duration_ms, error) VALUES ($1, $2, $3, $4, $5, $6::jsonb)`,
    [a.channel, a.key ?? null, a.status, a.attempts, a.durationMs, a.error],
  )
}

const SAVEPOINT = 'onepipe_channel_handler'

/**
 * Marks where a transactional handler's writes begin, right after the claim:
 * undoing a terminal failure back to here keeps the claimed row (and its
 * lock), so the failure is recorded in the same transaction and no duplicate
 * ever finds the key free in between.
 */
export async function markHandlerStart(tx: Queryable): Promise<void> {
  await tx.execute(`SAVEPOINT ${SAVEPOINT}`)
}

/** Undoes a transactional handler's writes back to {@link markHandlerStart}, keeping the claim. */
export async function undoHandler(tx: Queryable): Promise<void> {
  await tx.execute(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`)
}

/**
 * Bounds every later statement of the transaction (until it ends): a handler
 * that ignores its abort inside a long statement cannot hold the transaction,
 * its connection and the key's lock past the channel's timeout.
 */
export async function limitStatements(tx: Queryable, ms: number): Promise<void> {
  await tx.query(`SELECT set_config('statement_timeout', $1, true)`, [String(Math.ceil(ms))])
}

/**
 * One executed call, as `history()` answers it.
 *
 * @example
 * ```ts
 * const failed = (await pay.history({ limit: 100 })).filter((c) => c.status === 'failed')
 * ```
 */
export interface ChannelCall {
  id: number
  idempotencyKey: string | null
  status: 'completed' | 'failed'
  attempts: number
  durationMs: number
  error: SerializedError | null
  createdAt: Date
}

/** Recent executed calls, newest first. */
export async function listCalls(q: Queryable, channel: string, limit: number): Promise<ChannelCall[]> {
  const rows = await q.query<{ id: number; idempotency_key: string | null; status: ChannelCall['status']; attempts: number; duration_ms: number; error: SerializedError | null; created_at: Date }>(
    `SELECT id, idempotency_key, status, attempts, duration_ms, error, created_at FROM _onepipe_channel_calls
     WHERE channel_name = $1 ORDER BY id DESC LIMIT $2`,
    [channel, limit],
  )
  return rows.map((r) => ({ id: r.id, idempotencyKey: r.idempotency_key, status: r.status, attempts: r.attempts, durationMs: r.duration_ms, error: r.error, createdAt: r.created_at }))
}

/** Deletes history rows older than `keepMs` (bounded batch). */
export async function pruneCalls(q: Queryable, channel: string, keepMs: number): Promise<number> {
  return q.execute(
    `DELETE FROM _onepipe_channel_calls WHERE id IN (
       SELECT id FROM _onepipe_channel_calls WHERE channel_name = $1 AND created_at < now() - make_interval(secs => $2::float8 / 1000) LIMIT 1000)`,
    [channel, keepMs],
  )
}

/** Deletes expired keys of one channel (bounded batch). */
export async function sweepExpired(q: Queryable, channel: string): Promise<number> {
  return q.execute(
    `DELETE FROM _onepipe_channel_idempotency WHERE ctid IN (
       SELECT ctid FROM _onepipe_channel_idempotency WHERE channel_name = $1 AND expires_at <= now() LIMIT 1000)`,
    [channel],
  )
}

/**
 * An idempotency entry as operators see it: never the stored result (it may
 * be large or private), only its state and lifetime.
 *
 * @example
 * ```ts
 * { key: 'order-42', status: 'completed', createdAt: Date, expiresAt: Date, leaseExpiresAt: null }
 * ```
 */
export interface IdempotencyEntry {
  key: string
  status: 'pending' | 'completed' | 'failed'
  error: SerializedError | null
  createdAt: Date
  expiresAt: Date
  leaseExpiresAt: Date | null
}

/** Live idempotency entries of one channel, newest first. */
export async function listKeys(q: Queryable, channel: string, limit: number): Promise<IdempotencyEntry[]> {
  const rows = await q.query<{ idempotency_key: string; status: IdempotencyEntry['status']; error: SerializedError | null; created_at: Date; expires_at: Date; lease_expires_at: Date | null }>(
    `SELECT idempotency_key, status, error, created_at, expires_at, lease_expires_at FROM _onepipe_channel_idempotency
     WHERE channel_name = $1 AND expires_at > now() ORDER BY created_at DESC LIMIT $2`,
    [channel, limit],
  )
  return rows.map((r) => ({ key: r.idempotency_key, status: r.status, error: r.error, createdAt: r.created_at, expiresAt: r.expires_at, leaseExpiresAt: r.lease_expires_at }))
}
