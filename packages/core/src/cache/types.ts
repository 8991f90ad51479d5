/** A pub/sub listener: receives each message published on the channel. */
export type MessageHandler = (message: string) => void

/** Options of {@link CacheLike.subscribe}. */
export interface SubscribeOptions {
  /**
   * Runs each time the subscriber connection was lost and the channel is
   * subscribed again (never the first time). Messages published in the gap
   * are gone, so whoever waits for one re-checks what it waits for here.
   */
  onReconnect?: () => void
}

/**
 * Key-value cache with TTLs, counters and pub/sub. Redis when `REDIS_URL`
 * is set, process memory otherwise; values are JSON.
 */
export interface CacheLike {
  get<T = unknown>(key: string): Promise<T | undefined>
  set(key: string, value: unknown, options?: { ttlMs?: number }): Promise<void>
  del(key: string): Promise<boolean>
  incr(key: string, by?: number): Promise<number>
  publish(channel: string, message: string): Promise<number>
  /**
   * Calls `fn` with every message published on `channel`; resolves once
   * subscribed, with a function that unsubscribes.
   *
   * @example
   * ```ts
   * const stop = await cache.subscribe('orders', (m) => console.log(m), { onReconnect: () => recheck() })
   * ```
   */
  subscribe(channel: string, fn: MessageHandler, options?: SubscribeOptions): Promise<() => Promise<void>>
  ping(): Promise<void>
  close(): Promise<void>
}
