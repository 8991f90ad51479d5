// The statements of per-handler policies (policies.ts). Lock order, as in
// sql.ts and always after it: an ack locks pipelines, then stages, then
// policy rows in handler order; a claim locks policy rows first (handler
// order) and then only stage rows with SKIP LOCKED, so it never waits on
// an ack and no two of them wait on each other in a circle.
import type { Queryable } from '@onepipe/core'
import { claimQuery, type ClaimedRow } from './sql.js'

const MS = `* interval '1 millisecond'`

/** What a policy limits, as stored (null: that limit is off). Times in ms. */
export interface PolicySettings {
  maxConcurrency: number | null
  ratePerSecond: number | null
  burst: number | null
  breakerThreshold: number | null
  breakerMinCalls: number | null
  breakerWindowMs: number | null
  breakerCooldownMs: number | null
}

/** A policy row as a claim reads it under its lock; times as epoch ms of the database's clock. */
export interface LockedPolicy {
  handler: string
  max_concurrency: number | null
  rate_per_second: number | null
  burst: number | null
  tokens: number | null
  tokens_at_ms: number | null
  breaker_threshold: number | null
  breaker_state: 'closed' | 'open' | 'half_open'
  breaker_until_ms: number | null
  now_ms: number
}

/** A stored policy with its runtime state, for GET and the operator routes. */
export interface PolicyRow {
  app_id: string
  handler: string
  inherited: boolean
  max_concurrency: number | null
  rate_per_second: number | null
  burst: number | null
  tokens: number | null
  tokens_at: Date | null
  breaker_threshold: number | null
  breaker_min_calls: number | null
  breaker_window_ms: number | null
  breaker_cooldown_ms: number | null
  window_calls: number
  window_failures: number
  breaker_state: string
  breaker_until: Date | null
}

const SETTINGS = 'max_concurrency, rate_per_second, burst, breaker_threshold, breaker_min_calls, breaker_window_ms, breaker_cooldown_ms'

const settingsParams = (s: PolicySettings): unknown[] => [s.maxConcurrency, s.ratePerSecond, s.burst, s.breakerThreshold, s.breakerMinCalls, s.breakerWindowMs, s.breakerCooldownMs]

/** Which (application, handler) pairs have a policy, and what it limits; app_id '*' for every application. */
export async function listPolicyFlags(q: Queryable): Promise<{ app_id: string; handler: string; concurrency: boolean; rate: boolean; breaker: boolean }[]> {
  return q.query(
    `SELECT app_id, handler, max_concurrency IS NOT NULL AS concurrency, rate_per_second IS NOT NULL AS rate, breaker_threshold IS NOT NULL AS breaker
       FROM _onepipe_handler_policies`,
  )
}

/**
 * Writes the policy of `handler` for `appId` (an application's own, or '*'
 * for all of them, whose inherited copies follow it). Runtime state stays,
 * except that a breaker taken off is closed, so loosening a policy never
 * strands a handler.
 */
export async function upsertPolicy(q: Queryable, appId: string, handler: string, s: PolicySettings): Promise<void> {
  await q.query(
    `WITH w AS (
       INSERT INTO _onepipe_handler_policies (app_id, handler, inherited, ${SETTINGS})
       VALUES ($1, $2, false, $3::int, $4::float8, $5::int, $6::float8, $7::int, $8::int, $9::int)
       ON CONFLICT (app_id, handler) DO UPDATE SET inherited = false, max_concurrency = $3, rate_per_second = $4, burst = $5,
              breaker_threshold = $6, breaker_min_calls = $7, breaker_window_ms = $8, breaker_cooldown_ms = $9,
              breaker_state = CASE WHEN $6::float8 IS NULL THEN 'closed' ELSE _onepipe_handler_policies.breaker_state END,
              breaker_until = CASE WHEN $6::float8 IS NULL THEN NULL ELSE _onepipe_handler_policies.breaker_until END
     )
     UPDATE _onepipe_handler_policies SET max_concurrency = $3, rate_per_second = $4, burst = $5,
            breaker_threshold = $6, breaker_min_calls = $7, breaker_window_ms = $8, breaker_cooldown_ms = $9,
            breaker_state = CASE WHEN $6::float8 IS NULL THEN 'closed' ELSE breaker_state END,
            breaker_until = CASE WHEN $6::float8 IS NULL THEN NULL ELSE breaker_until END
      WHERE $1 = '*' AND handler = $2 AND inherited`,
    [appId, handler, ...settingsParams(s)],
  )
}

/** Removes the policy of `handler` for `appId` ('*': and every inherited copy). Answers whether one existed. */
export async function deletePolicy(q: Queryable, appId: string, handler: string): Promise<boolean> {
  const n = await q.execute(`DELETE FROM _onepipe_handler_policies WHERE handler = $2 AND (app_id = $1 OR ($1 = '*' AND inherited))`, [appId, handler])
  return n > 0
}

/** The policy rows of `handler` for `appId` and for '*' (the application's first). */
export async function readPolicy(q: Queryable, appId: string, handler: string): Promise<{ row: PolicyRow; running: number }[]> {
  const rows = await q.query<PolicyRow & { running: number }>(
    `SELECT p.*, (SELECT count(*)::int FROM _onepipe_pipeline_stages s WHERE s.app_id = p.app_id AND s.handler = p.handler AND s.status = 'Running') AS running
       FROM _onepipe_handler_policies p WHERE p.handler = $2 AND p.app_id IN ($1, '*') ORDER BY p.app_id = '*'`,
    [appId, handler],
  )
  return rows.map(({ running, ...row }) => ({ row, running: Number(running) }))
}

/** Gives `appId` its copies of the all-applications policies of `handlers` it has none of yet. */
export async function inheritPolicies(q: Queryable, appId: string, handlers: readonly string[]): Promise<void> {
  await q.execute(
    `INSERT INTO _onepipe_handler_policies (app_id, handler, inherited, ${SETTINGS})
     SELECT $1, handler, true, ${SETTINGS} FROM _onepipe_handler_policies WHERE app_id = '*' AND handler = ANY($2::text[])
     ON CONFLICT (app_id, handler) DO NOTHING`,
    [appId, handlers],
  )
}

/**
 * Locks the policy rows of `handlers` for `appId` in handler order (every
 * replica's claim of these handlers waits here), with the database's clock
 * read after the lock was granted.
 */
export async function lockPolicies(q: Queryable, appId: string, handlers: readonly string[]): Promise<LockedPolicy[]> {
  const rows = await q.query<LockedPolicy>(
    `SELECT handler, max_concurrency, rate_per_second, burst, tokens, breaker_threshold, breaker_state,
            extract(epoch FROM tokens_at) * 1000 AS tokens_at_ms, extract(epoch FROM breaker_until) * 1000 AS breaker_until_ms,
            extract(epoch FROM clock_timestamp()) * 1000 AS now_ms
       FROM _onepipe_handler_policies WHERE app_id = $1 AND handler = ANY($2::text[]) ORDER BY handler FOR UPDATE`,
    [appId, handlers],
  )
  const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v))
  return rows.map((r) => ({ ...r, tokens: num(r.tokens), tokens_at_ms: num(r.tokens_at_ms), breaker_until_ms: num(r.breaker_until_ms), now_ms: Number(r.now_ms), rate_per_second: num(r.rate_per_second), breaker_threshold: num(r.breaker_threshold) }))
}

/**
 * Running stages per handler of `appId`. A statement of its own after
 * {@link lockPolicies}: its snapshot then holds every claim committed by
 * the replica that had the lock before.
 */
export async function countRunning(q: Queryable, appId: string, handlers: readonly string[]): Promise<Map<string, number>> {
  const rows = await q.query<{ handler: string; n: number }>(
    `SELECT handler, count(*)::int AS n FROM _onepipe_pipeline_stages WHERE app_id = $1 AND handler = ANY($2::text[]) AND status = 'Running' GROUP BY handler`,
    [appId, handlers],
  )
  return new Map(rows.map((r) => [r.handler, Number(r.n)]))
}

// As PICK_BY_HANDLERS in sql.ts, with a cap of its own per handler ($6).
const PICK_CAPPED = `SELECT p.id FROM unnest($2::text[], $6::int[]) AS h(handler, cap)
       CROSS JOIN LATERAL (
         SELECT id, ready_at FROM _onepipe_pipeline_stages
          WHERE app_id = $1 AND handler = h.handler AND status = 'Pending'
          ORDER BY ready_at LIMIT least($3, h.cap) FOR UPDATE SKIP LOCKED) p
      ORDER BY p.ready_at LIMIT $3`

/** Hands out up to `max` ready stages of `handlers`, at most `caps[i]` of `handlers[i]` (see claimQuery in sql.ts). */
export async function claimCapped(q: Queryable, appId: string, handlers: readonly string[], caps: readonly number[], max: number, workerId: string | null, leaseMs: number): Promise<ClaimedRow[]> {
  return q.query<ClaimedRow>(claimQuery(PICK_CAPPED), [appId, handlers, max, workerId, leaseMs, caps])
}

/** The handlers of the Pending stages among `stageIds` (RabbitMQ dispatch's claim by id). */
export async function pendingHandlers(q: Queryable, appId: string, stageIds: readonly string[]): Promise<{ id: string; handler: string }[]> {
  return q.query(`SELECT id, handler FROM _onepipe_pipeline_stages WHERE id = ANY($2::uuid[]) AND app_id = $1 AND status = 'Pending' ORDER BY ready_at`, [appId, stageIds])
}

/**
 * What a claim took from the locked policies: each handler's bucket after
 * it (null: no bucket) as of `atMs`, and whether it handed out the
 * breaker's probe (the breaker is then half-open).
 */
export async function spendPolicies(q: Queryable, appId: string, spent: readonly { handler: string; tokens: number | null; atMs: number; probe: boolean }[]): Promise<void> {
  if (spent.length === 0) return
  await q.execute(
    `UPDATE _onepipe_handler_policies p
        SET tokens = coalesce(x.tokens, p.tokens),
            tokens_at = CASE WHEN x.tokens IS NULL THEN p.tokens_at ELSE greatest(p.tokens_at, to_timestamp(x.at / 1000)) END,
            breaker_state = CASE WHEN x.probe = 1 THEN 'half_open' ELSE p.breaker_state END
       FROM unnest($2::text[], $3::float8[], $4::float8[], $5::int[]) AS x(handler, tokens, at, probe)
      WHERE p.app_id = $1 AND p.handler = x.handler`,
    [appId, spent.map((s) => s.handler), spent.map((s) => s.tokens), spent.map((s) => s.atMs), spent.map((s) => (s.probe ? 1 : 0))],
  )
}

// Every expression reads the row as it is when the UPDATE got its lock (the
// latest commit), so concurrent acks of one handler each count.
const EXPIRED = `p.window_started_at + p.breaker_window_ms ${MS} <= now()`
const CALLS = `(CASE WHEN ${EXPIRED} THEN 0 ELSE p.window_calls END + $3::int)`
const FAILS = `(CASE WHEN ${EXPIRED} THEN 0 ELSE p.window_failures END + $4::int)`
const NEXT = `(CASE WHEN p.breaker_state = 'half_open' THEN CASE WHEN $4::int > 0 THEN 'open' ELSE 'closed' END
                    WHEN p.breaker_state = 'closed' AND ${CALLS} >= p.breaker_min_calls AND ${FAILS} >= p.breaker_threshold * ${CALLS} THEN 'open'
                    ELSE p.breaker_state END)`
// A state change, or acks while open (stragglers handed out before it opened), start a fresh window.
const FRESH = `(${NEXT} <> p.breaker_state OR p.breaker_state = 'open')`

/**
 * Records `calls` acks of `handler`, `failures` of them failed, in the
 * breaker's window (a new window when the last one passed) and moves the
 * breaker: closed opens at the threshold, a half-open one closes on a
 * success and opens again on a failure; acks while open change nothing.
 * Also wakes the pulls parked on the handler (NOTIFY `channel`), since the
 * ack freed a slot of its concurrency. Answers the breaker's state (null:
 * the handler has no breaker for this application).
 */
export async function recordAcks(q: Queryable, appId: string, handler: string, calls: number, failures: number, channel: string): Promise<string | null> {
  const [row] = await q.query<{ state: string | null }>(
    `WITH b AS (
       UPDATE _onepipe_handler_policies p
          SET breaker_until = CASE WHEN ${NEXT} = 'open' AND p.breaker_state <> 'open' THEN now() + p.breaker_cooldown_ms ${MS}
                                   WHEN ${NEXT} = 'closed' THEN NULL ELSE p.breaker_until END,
              window_calls = CASE WHEN ${FRESH} THEN 0 ELSE ${CALLS} END,
              window_failures = CASE WHEN ${FRESH} THEN 0 ELSE ${FAILS} END,
              window_started_at = CASE WHEN ${FRESH} OR ${EXPIRED} THEN now() ELSE p.window_started_at END,
              breaker_state = ${NEXT}
        WHERE p.app_id = $1 AND p.handler = $2 AND p.breaker_threshold IS NOT NULL AND $3::int > 0
       RETURNING p.breaker_state
     )
     SELECT (SELECT breaker_state FROM b) AS state, pg_notify($5, $1 || chr(9) || $2) AS woken`,
    [appId, handler, calls, failures, channel],
  )
  return row?.state ?? null
}
