import { Redis } from 'ioredis'
import { TransportError } from '../errors/index.js'
import type { CacheLike, MessageHandler, SubscribeOptions } from './types.js'

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
  #onReconnect = new Set<() => void>()

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

  /** The connection for pub/sub, created on the first subscribe. */
  #subscriber(): Redis {
    if (this.#sub) return this.#sub
    // ioredis would subscribe again by itself after a reconnect, but it says
    // 'ready' before it does: subscribing here instead lets the reconnect
    // hooks run only once messages flow again, so a hook's re-check cannot
    // fall before the subscription and miss a change made in between.
    const sub = this.client.duplicate({ autoResubscribe: false })
    sub.on('error', () => undefined)
    sub.on('message', (ch: string, msg: string) => {
      for (const h of this.#handlers.get(ch) ?? []) h(msg)
    })
    let connected = false
    sub.on('ready', () => {
      if (!connected) {
        connected = true
        return
      }
      const channels = [...this.#handlers.keys()]
      if (channels.length === 0) return
      // A failed subscribe is retried at the next 'ready'.
      sub.subscribe(...channels).then(
        () => {
          for (const hook of [...this.#onReconnect]) {
            try {
              hook()
            } catch {
              // One hook that throws must not keep the others from re-checking.
            }
          }
        },
        () => undefined,
      )
    })
    this.#sub = sub
    return sub
  }

  /**
   * Calls `fn` with every message published on `channel` (prefixed). The
   * subscriber connection reconnects by itself when it is lost; messages
   * published meanwhile are gone, so `options.onReconnect` runs once the
   * channel is subscribed again, for the caller to re-check.
   *
   * @example
   * ```ts
   * const stop = await cache.subscribe('prices', (m) => show(JSON.parse(m)), { onReconnect: () => void reload() })
   * await stop()
   * ```
   */
  async subscribe(channel: string, fn: MessageHandler, options: SubscribeOptions = {}): Promise<() => Promise<void>> {
    const sub = this.#subscriber()
    const ch = this.#k(channel)
    let set = this.#handlers.get(ch)
    if (!set) {
      const fresh = new Set<MessageHandler>()
      this.#handlers.set(ch, fresh)
      try {
        await this.#run(() => sub.subscribe(ch))
      } catch (e) {
        // Forgotten, so that the next subscribe to this channel tries again.
        if (fresh.size === 0) this.#handlers.delete(ch)
        throw e
      }
      set = fresh
    }
    const wrapped: MessageHandler = (m) => fn(m)
    set.add(wrapped)
    const hook = options.onReconnect
    // Wrapped, so that one function given to two subscriptions is two hooks.
    const ownHook = hook && (() => hook())
    if (ownHook) this.#onReconnect.add(ownHook)
    return async () => {
      if (ownHook) this.#onReconnect.delete(ownHook)
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
