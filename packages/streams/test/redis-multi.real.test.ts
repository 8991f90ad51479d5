import { afterAll, beforeAll, describe } from 'vitest'
import { redisUrl } from '@onepipe/testing'
import { freshRedisStore } from './durable-stores.js'
import { sharedServerTests } from './shared-servers.js'

describe('Redis store: several server processes serve one set of streams', () => {
  let prefix = ''
  let cleanup: (() => Promise<void>) | undefined
  beforeAll(async () => {
    const made = await freshRedisStore()
    prefix = made.prefix
    cleanup = made.cleanup
    await made.store.close()
  })
  afterAll(async () => {
    await cleanup?.()
  })
  sharedServerTests('redis', () => prefix, () => ({ REDIS_URL: redisUrl() }))
})
