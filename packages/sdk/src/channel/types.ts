import type { Database, Logger, Queryable, StandardSchemaV1 } from '@onepipe/core'
import type { RetryPolicy } from './retry.js'

/**
 * What a channel handler receives besides its input.
 *
 * @example
 * ```ts
 * .handler(async (input, ctx) => fetch(url, { method: 'POST', body: JSON.stringify(input), signal: ctx.signal }))
 * ```
 */
export interface ChannelContext {
  channel: string
  /** Aborted when the attempt runs past `.timeout()`: stop work and return. */
  signal: AbortSignal
  /** 1 for the first attempt, 2 for the first retry… */
  attempt: number
  idempotencyKey: string | undefined
  db: Database | undefined
  logger: Logger
}

/**
 * What a transactional handler receives (see {@link ChannelBuilder.transactional}):
 * `tx` instead of `db`, so its writes join the transaction that claims the
 * key and records the result.
 *
 * @example
 * ```ts
 * .transactional()
 * .handler(async (i, ctx) => {
 *   await ctx.tx.execute('INSERT INTO payments (order_id, amount) VALUES ($1, $2)', [i.orderId, i.amount])
 *   return { paid: true }
 * })
 * ```
 */
export interface TransactionalContext extends Omit<ChannelContext, 'db'> {
  /**
   * The call's transaction: the key's claim, these statements and the
   * recorded result commit together or not at all. Send every statement of
   * the handler through it, never through the database itself (on the
   * embedded PGlite, which has one connection, that waits for this very
   * transaction forever). Refuses statements once the attempt is over.
   */
  tx: Queryable
}

/**
 * Per-call options.
 *
 * @example
 * ```ts
 * await pay.call(input, { idempotencyKey: req.headers['idempotency-key'] })
 * ```
 */
export interface CallOptions {
  /** Overrides the key computed by `.idempotency(fn)` (the HTTP `Idempotency-Key` header). */
  idempotencyKey?: string
}

interface IdempotencyConfig {
  key: (input: unknown) => string | number
  ttlMs: number
  leaseMs: number
}

/** @internal Everything a built Channel runs with. */
export interface ChannelConfig {
  name: string
  input: StandardSchemaV1 | undefined
  output: StandardSchemaV1 | undefined
  db: Database | undefined
  idempotency: IdempotencyConfig | undefined
  retry: RetryPolicy
  timeoutMs: number | undefined
  history: boolean
  /** Each attempt runs in one transaction with the key's claim and its outcome. */
  transactional: boolean
  /** Longest a duplicate waiting on another instance's lease goes without looking at the row again. */
  recheckMs: number
  /** Gets a {@link ChannelContext}, or a {@link TransactionalContext} when `transactional`. */
  handler: (input: unknown, ctx: never) => unknown
}
