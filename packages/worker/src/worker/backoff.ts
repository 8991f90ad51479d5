/** Longest pause between two tries of a failing call, in ms. */
export const MAX_BACKOFF_MS = 5000

/**
 * The pause before try `failures + 1`: exponential from 100 ms, capped at
 * {@link MAX_BACKOFF_MS}, with full jitter so that a fleet of workers that
 * lost the control plane together does not come back in one wave.
 */
export function backoffMs(failures: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(failures, 10))
  return Math.round(ceiling / 2 + (random() * ceiling) / 2)
}

/** Waits `ms`, or less when `signal` aborts (never rejects: the caller looks at its own state). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}
