// OnePipe's Unbroken server on the Redis store (REDIS_URL, default
// redis://127.0.0.1:6379), under a key prefix of its own that it deletes on
// stop, for bench/streams' redis phase.
import { Redis } from 'ioredis'
import { RedisStreamStore, UnbrokenServer } from '@onepipe/streams'
import { announce } from './child.mjs'

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = `bench:onepipe-streams:${process.pid}:`
const store = await RedisStreamStore.open({ url, prefix })
const server = new UnbrokenServer({ store, port: 0, sseLifetimeMs: 120_000, longPollTimeoutMs: 30_000 })
const { port } = await server.start()
announce(port, undefined, async () => {
  await server.stop()
  const redis = new Redis(url)
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
})
