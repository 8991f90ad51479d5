import { ConfigError } from '../errors/index.js'
import { registerPrimitive } from '../manifest/index.js'
import { MemoryCache } from './memory.js'
import { RedisCache } from './redis.js'
import type { CacheLike, MessageHandler, SubscribeOptions } from './types.js'

export { MemoryCache, RedisCache, type CacheLike, type MessageHandler, type SubscribeOptions }

/** A cache: {@link RedisCache} or {@link MemoryCache}. */
export type Cache = RedisCache | MemoryCache

/**
 * Builds caches. `Cache.fromEnv()` picks Redis when `REDIS_URL` is set and
 * memory otherwise.
 *
 * @example
 * ```ts
 * const cache = Cache.create('main').redis('redis://127.0.0.1:6379').prefix('shop:').build()
 * await cache.set('greeting', { hi: 1 }, { ttlMs: 60_000 })
 * const unsub = await cache.subscribe('events', (m) => console.log(m))
 * ```
 */
export const Cache = {
  create(name: string): CacheBuilder {
    return new CacheBuilder(name)
  },
  fromEnv(prefix = ''): Cache {
    return new CacheBuilder('main').prefix(prefix).build()
  },
}

/** Fluent configuration for a cache. */
export class CacheBuilder {
  #name: string
  #url: string | undefined = process.env.REDIS_URL || undefined
  #prefix = ''
  constructor(name: string) {
    this.#name = name
  }
  /** Use Redis at `url`. */
  redis(url: string): this {
    this.#url = url
    return this
  }
  /** Keep everything in process memory. */
  memory(): this {
    this.#url = undefined
    return this
  }
  /** Prefix every key and channel (a namespace). */
  prefix(p: string): this {
    this.#prefix = p
    return this
  }
  /**
   * Builds the cache and records it in the manifest.
   *
   * @throws ConfigError `INVALID_REDIS_URL` when the URL is not `redis://` or `rediss://`
   */
  build(): Cache {
    if (this.#url !== undefined && !/^rediss?:\/\//.test(this.#url)) {
      throw new ConfigError('INVALID_REDIS_URL', `${process.env.REDIS_URL === this.#url ? 'REDIS_URL' : 'The Redis URL'} "${this.#url.replace(/:[^:@/]*@/, ':***@')}" is not a redis:// or rediss:// URL; fix it, or unset it to keep the cache in memory`)
    }
    registerPrimitive({ primitive: 'cache', name: this.#name, infrastructure: this.#url ? ['redis'] : ['none'], config: { kind: this.#url ? 'redis' : 'memory' } })
    return this.#url ? new RedisCache(this.#url, this.#prefix) : new MemoryCache()
  }
}
