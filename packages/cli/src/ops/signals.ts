/**
 * Runs `fn` with a signal that aborts on the first SIGINT or SIGTERM, so a
 * command that follows or waits (flows tail --follow, cron trigger --wait)
 * ends its work cleanly on Ctrl-C and exits on its own terms.
 *
 * @example
 * ```ts
 * await untilSignal(async (signal) => { for await (const e of flow.stream({ live: true, signal })) print(e) })
 * ```
 */
export function untilSignal<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController()
  const stop = () => ac.abort()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  return fn(ac.signal).finally(() => {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  })
}
