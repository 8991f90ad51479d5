import { Redis } from 'ioredis'
import { TransportError } from '../errors/index.js'
import type { CacheLike, MessageHandler } from './types.js'

function unavailable(err: unknown): TransportError {
  const msg = err instanceof Error ? err.message : String(err)
  return new TransportError('CACHE_UNAVAILABLE', `Redis is unreachable (${msg}); check REDIS_URL and that Redis is running`, { cause: err })
}

/**
 * The Redis cache. Keys are prefixed with `prefix` (a namespace per app or
 * per test). Commands fail fast with a TransportError while Redis is down
 * instead of queueing forever.
 */
export class RedisCache implements CacheLike {
  readonly kind = 'redis' as const
  readonly prefix: string
  readonly client: Redis
  #sub: Redis | undefined
  #handlers = new Map<string, Set<MessageHandler>>()

  constructor(url: string, prefix = '') {
    this.prefix = prefix
    this.client = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false })
    // ioredis reconnects by itself; without a listener the error would crash the process.
    this.client.on('error', () => undefined)
  }

  #k(key: string): string {
    return this.prefix + key
  }

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (e) {
      throw unavailable(e)
    }
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    const v = await this.#run(() => this.client.get(this.#k(key)))
    return v === null ? undefined : (JSON.parse(v) as T)
  }

  async set(key: string, value: unknown, options: { ttlMs?: number } = {}): Promise<void> {
    const v = JSON.stringify(value)
    await this.#run(() => (options.ttlMs === undefined ? this.client.set(this.#k(key), v) : this.client.set(this.#k(key), v, 'PX', Math.max(1, Math.round(options.ttlMs)))))
  }

  async del(key: string): Promise<boolean> {
    return (await this.#run(() => this.client.del(this.#k(key)))) > 0
  }

  async incr(key: string, by = 1): Promise<number> {
    return this.#run(() => this.client.incrby(this.#k(key), by))
  }

  async publish(channel: string, message: string): Promise<number> {
    return this.#run(() => this.client.publish(this.#k(channel), message))
  }

  async subscribe(channel: string, fn: MessageHandler): Promise<() => Promise<void>> {
    if (!this.#sub) {
      const sub = this.client.duplicate()
      sub.on('error', () => undefined)
      sub.on('message', (ch: string, msg: string) => {
        for (const h of this.#handlers.get(ch) ?? []) h(msg)
      })
      this.#sub = sub
    }
    const sub = this.#sub
    const ch = this.#k(channel)
    let set = this.#handlers.get(ch)
    if (!set) {
      this.#handlers.set(ch, (set = new Set()))
      await this.#run(() => sub.subscribe(ch))
    }
    const wrapped: MessageHandler = (m) => fn(m)
    set.add(wrapped)
    return async () => {
      set.delete(wrapped)
      if (set.size === 0) {
        this.#handlers.delete(ch)
        await this.#run(() => sub.unsubscribe(ch))
      }
    }
  }

  async ping(): Promise<void> {
    await this.#run(() => this.client.ping())
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.client.quit(), this.#sub?.quit()])
  }
}
