import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Cache } from '@onepipe/core'
import { testCache, waitFor } from '@onepipe/testing'

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

  it('keeps a key for its TTL and drops it once the TTL ran out', async () => {
    // A long TTL: present right after set, however slow the machine.
    await cache.set('long', 1, { ttlMs: 600_000 })
    expect(await cache.get('long')).toBe(1)
    // A short TTL: gone once it ran out (waited for, not slept for).
    await cache.set('short', 2, { ttlMs: 50 })
    await waitFor(async () => (await cache.get('short')) === undefined, { what: 'the 50 ms key to expire' })
    expect(await cache.get('long')).toBe(1)
  })

  it('increments atomically', async () => {
    await Promise.all(Array.from({ length: 50 }, () => cache.incr('n')))
    expect(await cache.incr('n', 10)).toBe(60)
  })

  it('publishes to subscribers and stops after unsubscribe', async () => {
    const got: string[] = []
    const stop = await cache.subscribe('ch', (m) => got.push(m))
    await cache.publish('ch', 'one')
    await waitFor(() => got.length >= 1, { what: 'the first message' })
    await stop()
    // A probe subscribed after the stop: once it has 'two', a handler still subscribed would have it too.
    const probe: string[] = []
    const stopProbe = await cache.subscribe('ch', (m) => probe.push(m))
    await cache.publish('ch', 'two')
    await waitFor(() => probe.length >= 1, { what: 'the probe to receive the second message' })
    await stopProbe()
    expect(probe).toEqual(['two'])
    expect(got).toEqual(['one'])
  })
})
