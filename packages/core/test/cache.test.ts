import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Cache } from '@onepipe/core'
import { testCache } from '@onepipe/testing'

describe('Cache', () => {
  let cache: Cache
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ cache, cleanup } = await testCache())
  })
  afterAll(() => cleanup())

  it('stores JSON values and deletes them', async () => {
    await cache.set('k', { a: [1, 'x'] })
    expect(await cache.get('k')).toEqual({ a: [1, 'x'] })
    expect(await cache.del('k')).toBe(true)
    expect(await cache.get('k')).toBeUndefined()
    expect(await cache.del('k')).toBe(false)
  })

  it('expires a key after its TTL', async () => {
    await cache.set('short', 1, { ttlMs: 50 })
    expect(await cache.get('short')).toBe(1)
    await new Promise((r) => setTimeout(r, 120))
    expect(await cache.get('short')).toBeUndefined()
  })

  it('increments atomically', async () => {
    await Promise.all(Array.from({ length: 50 }, () => cache.incr('n')))
    expect(await cache.incr('n', 10)).toBe(60)
  })

  it('publishes to subscribers and stops after unsubscribe', async () => {
    const got: string[] = []
    const stop = await cache.subscribe('ch', (m) => got.push(m))
    await cache.publish('ch', 'one')
    for (let i = 0; i < 50 && got.length < 1; i++) await new Promise((r) => setTimeout(r, 10))
    await stop()
    await cache.publish('ch', 'two')
    await new Promise((r) => setTimeout(r, 50))
    expect(got).toEqual(['one'])
  })
})
