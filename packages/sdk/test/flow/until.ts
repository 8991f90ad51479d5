import { waitFor } from '@onepipe/testing'

/** Polls `cond` until it holds; throws after `ms`, a deadline that only bounds how long a broken test hangs. */
export async function until(cond: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  await waitFor(cond, { timeoutMs: ms, intervalMs: 10 })
}
