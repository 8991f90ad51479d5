import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe } from 'vitest'
import { redisUrl } from '@onepipe/testing'
import { killSubscribers } from '../../core/test/gap-proxy.js'
import { freshRedisStore } from './durable-stores.js'
import { lostNoticeTests } from './lost-notices.js'

describe('Redis store: live reads survive a lost pub/sub connection', () => {
  let prefix = ''
  let redis: Redis
  let cleanup: (() => Promise<void>) | undefined
  beforeAll(async () => {
    const made = await freshRedisStore()
    prefix = made.prefix
    cleanup = made.cleanup
    await made.store.close()
    redis = new Redis(redisUrl())
  })
  afterAll(async () => {
    await redis.quit()
    await cleanup?.()
  })
  lostNoticeTests({
    kind: 'redis',
    namespace: () => prefix,
    url: () => redisUrl(),
    env: (url) => ({ REDIS_URL: url }),
    kill: (_server, proxy) => killSubscribers(redis, proxy.upstreamPorts()),
  })
})
