import type { CacheLike, MessageHandler, SubscribeOptions } from './types.js'

/**
 * The in-process cache used when no `REDIS_URL` is set. Expired keys are
 * dropped on read and by a sweep, so memory does not grow with dead keys.
 */
export class MemoryCache implements CacheLike {
  readonly kind = 'memory' as const
  #data = new Map<string, { v: string; exp: number | undefined }>()
  #subs = new Map<string, Set<MessageHandler>>()
  #sweep: NodeJS.Timeout

  constructor() {
    this.#sweep = setInterval(() => this.#evict(), 30_000)
    this.#sweep.unref()
  }

  #evict(): void {
    const now = Date.now()
    for (const [k, e] of this.#data) if (e.exp !== undefined && e.exp <= now) this.#data.delete(k)
  }

  #live(key: string): string | undefined {
    const e = this.#data.get(key)
    if (!e) return undefined
    if (e.exp !== undefined && e.exp <= Date.now()) {
      this.#data.delete(key)
      return undefined
    }
    return e.v
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    const v = this.#live(key)
    return v === undefined ? undefined : (JSON.parse(v) as T)
  }

  async set(key: string, value: unknown, options: { ttlMs?: number } = {}): Promise<void> {
    this.#data.set(key, { v: JSON.stringify(value), exp: options.ttlMs === undefined ? undefined : Date.now() + options.ttlMs })
  }

  async del(key: string): Promise<boolean> {
    const had = this.#live(key) !== undefined
    this.#data.delete(key)
    return had
  }

  async incr(key: string, by = 1): Promise<number> {
    const cur = this.#live(key)
    const n = (cur === undefined ? 0 : Number(JSON.parse(cur))) + by
    const exp = this.#data.get(key)?.exp
    this.#data.set(key, { v: JSON.stringify(n), exp })
    return n
  }

  async publish(channel: string, message: string): Promise<number> {
    const subs = this.#subs.get(channel)
    if (!subs) return 0
    // Delivered on a later tick, as Redis would, so a publisher never runs subscriber code inline.
    for (const fn of subs) queueMicrotask(() => fn(message))
    return subs.size
  }

  /** In one process nothing is ever lost in transit: `options.onReconnect` never runs. */
  async subscribe(channel: string, fn: MessageHandler, _options?: SubscribeOptions): Promise<() => Promise<void>> {
    let subs = this.#subs.get(channel)
    if (!subs) this.#subs.set(channel, (subs = new Set()))
    const wrapped: MessageHandler = (m) => fn(m)
    subs.add(wrapped)
    return async () => {
      subs.delete(wrapped)
      if (subs.size === 0) this.#subs.delete(channel)
    }
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.#sweep)
    this.#data.clear()
    this.#subs.clear()
  }
}
