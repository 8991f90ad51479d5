import { ConfigError } from '../errors/index.js'
import { parseDuration, type Duration } from '../duration/index.js'

/**
 * How a failing operation (a workflow step, a channel call) is retried. Only
 * retryable errors are retried (`isRetryable`); a `TerminalError` fails at
 * once. The delay before attempt n+1 is `delay` (fixed), `delay·n` (linear)
 * or `delay·2^(n-1)` (exponential), capped at `maxDelay`, with jitter on its
 * upper half.
 *
 * @example
 * ```ts
 * const policy: RetryPolicy = { attempts: 5, backoff: 'exponential', delay: '500ms', maxDelay: '30s' }
 * ```
 */
export interface RetryPolicy {
  /** Total attempts including the first. */
  attempts?: number
  backoff?: 'fixed' | 'linear' | 'exponential'
  /** Base delay. */
  delay?: Duration
  /** Upper bound of one delay. */
  maxDelay?: Duration
}

/** A {@link RetryPolicy} with every field decided, in milliseconds. */
export interface ResolvedRetry {
  attempts: number
  backoff: 'fixed' | 'linear' | 'exponential'
  delayMs: number
  maxDelayMs: number
}

/**
 * Fills a policy from `base` and checks it, so a typo fails at build time.
 *
 * @example
 * ```ts
 * const r = resolveRetry({ attempts: 3 }, { attempts: 1, backoff: 'exponential', delayMs: 100, maxDelayMs: 30_000 })
 * ```
 */
export function resolveRetry(p: RetryPolicy | undefined, base: ResolvedRetry): ResolvedRetry {
  if (!p) return base
  const attempts = p.attempts ?? base.attempts
  if (!Number.isInteger(attempts) || attempts < 1) throw new ConfigError('INVALID_RETRY', `retry.attempts must be an integer >= 1, got ${attempts}`)
  const backoff = p.backoff ?? base.backoff
  if (!['fixed', 'linear', 'exponential'].includes(backoff)) throw new ConfigError('INVALID_RETRY', `retry.backoff must be fixed, linear or exponential, got "${String(backoff)}"`)
  return {
    attempts,
    backoff,
    delayMs: p.delay === undefined ? base.delayMs : parseDuration(p.delay),
    maxDelayMs: p.maxDelay === undefined ? base.maxDelayMs : parseDuration(p.maxDelay),
  }
}

/**
 * The wait before attempt `attempt + 1` (attempts count from 1).
 *
 * @example
 * ```ts
 * await new Promise((r) => setTimeout(r, retryDelay(policy, attempt)))
 * ```
 */
export function retryDelay(r: ResolvedRetry, attempt: number): number {
  const raw = r.backoff === 'fixed' ? r.delayMs : r.backoff === 'linear' ? r.delayMs * attempt : r.delayMs * 2 ** (attempt - 1)
  const capped = Math.min(raw, r.maxDelayMs)
  // Half fixed, half random: spreads the retries of many callers without
  // ever retrying sooner than half the configured delay.
  return capped / 2 + Math.random() * (capped / 2)
}
