/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /**
   * Longest wait before failing (default 20 s). Generous on purpose: the
   * deadline only bounds how long a broken test hangs; a loaded CI machine
   * must never reach it when the behaviour is right.
   */
  timeoutMs?: number
  /** Pause between two looks (default 20 ms). */
  intervalMs?: number
  /** What is awaited, for the error message. */
  what?: string
}

/**
 * Waits until `cond` answers a truthy value and resolves with it. A test
 * waits for what it needs by condition, never by a fixed sleep: a fixed
 * sleep is either too short on a loaded machine or wasted on an idle one.
 * Throws when the deadline passes, naming what was awaited and the last
 * error `cond` threw (a condition may throw while the thing is not there yet).
 *
 * @example
 * ```ts
 * const row = await waitFor(async () => (await db.query('SELECT * FROM runs WHERE id = $1', [id]))[0], { what: 'the run row' })
 * await waitFor(() => seen.length === 3)
 * ```
 */
export async function waitFor<T>(cond: () => T | Promise<T>, options: WaitForOptions = {}): Promise<Exclude<T, false | 0 | '' | null | undefined>> {
  const timeoutMs = options.timeoutMs ?? 20_000
  const intervalMs = options.intervalMs ?? 20
  const end = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const v = await cond()
      if (v) return v as Exclude<T, false | 0 | '' | null | undefined>
      lastError = undefined
    } catch (e) {
      lastError = e
    }
    if (Date.now() >= end) {
      const why = lastError === undefined ? '' : `; last error: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)}`
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what ?? 'a condition'}${why}`)
    }
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}
