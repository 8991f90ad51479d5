import { isRetryable, retryDelay, TimeoutError, type ResolvedRetry } from '@onepipe/core'

/** A channel's retry policy: core's, resolved (channels default to one attempt). */
export type RetryPolicy = ResolvedRetry

/** What {@link runAttempts} reports besides the value or error. */
export interface AttemptStats {
  attempts: number
  /** Set when the last attempt ignored its abort and is still running; settles when it finally ends. */
  stillRunning: Promise<unknown> | undefined
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/**
 * One attempt's abort: the AbortSignal is made only when someone asks for it
 * (an AbortController costs a few percent of a fast call's CPU, and most
 * handlers without a timeout never look), and `onAbort` callbacks need none.
 */
export class AttemptAbort {
  #ac: AbortController | undefined
  #reason: unknown
  #aborted = false
  readonly #callbacks: (() => void)[] = []

  /** Aborted when the attempt runs past its timeout. */
  get signal(): AbortSignal {
    if (!this.#ac) {
      this.#ac = new AbortController()
      if (this.#aborted) this.#ac.abort(this.#reason)
    }
    return this.#ac.signal
  }

  /** Runs `fn` when the attempt is aborted (at once if it already was). */
  onAbort(fn: () => void): void {
    if (this.#aborted) fn()
    else this.#callbacks.push(fn)
  }

  abort(reason: unknown): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    for (const fn of this.#callbacks.splice(0)) fn()
    this.#ac?.abort(reason)
  }
}

/**
 * Runs `fn` until it succeeds, fails with a non-retryable error, or the
 * attempts are used up. With a timeout, an attempt that runs past it gets
 * its signal aborted; the next attempt starts only after the aborted one
 * has actually settled (never two at once). If it does not settle within
 * `graceMs` the whole run fails with the TimeoutError and no retry starts;
 * `stats.stillRunning` then tracks the stray attempt.
 */
export async function runAttempts<T>(
  fn: (abort: AttemptAbort, attempt: number) => Promise<T>,
  policy: RetryPolicy,
  timeoutMs: number | undefined,
  graceMs: number,
  subject: string,
  stats: AttemptStats,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    stats.attempts = attempt
    const ac = new AttemptAbort()
    const run = Promise.resolve().then(() => fn(ac, attempt))
    const settled = run.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    )
    let outcome: { ok: true; value: T } | { ok: false; error: unknown }
    if (timeoutMs === undefined) {
      outcome = await settled
    } else {
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), timeoutMs)))
      const first = await Promise.race([settled, late])
      clearTimeout(timer)
      if (first === 'late') {
        const err = new TimeoutError('CHANNEL_TIMEOUT', `${subject} ran past its timeout of ${timeoutMs} ms (attempt ${attempt})`, { attempt, timeoutMs })
        ac.abort(err)
        let graceTimer: NodeJS.Timeout | undefined
        const after = await Promise.race([settled, new Promise<'stuck'>((r) => (graceTimer = setTimeout(() => r('stuck'), graceMs)))])
        clearTimeout(graceTimer)
        if (after === 'stuck') {
          stats.stillRunning = settled
          throw err
        }
        // The attempt ended after the abort: whatever it answered, the attempt timed out.
        outcome = { ok: false, error: err }
      } else {
        outcome = first
      }
    }
    if (outcome.ok) return outcome.value
    if (!isRetryable(outcome.error) || attempt >= policy.attempts) throw outcome.error
    await sleep(retryDelay(policy, attempt))
  }
}
