/** A pub/sub listener: receives each message published on the channel. */
export type MessageHandler = (message: string) => void

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
  subscribe(channel: string, fn: MessageHandler): Promise<() => Promise<void>>
  ping(): Promise<void>
  close(): Promise<void>
}
