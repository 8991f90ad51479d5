import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { RedisCache } from '@onepipe/core'
import { redisUrl, requireService, uniqueName, waitFor } from '@onepipe/testing'
import { GapProxy, killSubscribers } from './gap-proxy.js'

// A pub/sub connection that is lost comes back by itself, but messages
// published in the gap are gone: each subscription is told once its channel
// is subscribed again, so it can re-check.
describe('RedisCache.subscribe across a lost subscriber connection', () => {
  let proxy: GapProxy
  let admin: Redis
  let cache: RedisCache
  let publisher: RedisCache
  const prefix = `${uniqueName('t')}:`
  beforeAll(async () => {
    await requireService('redis')
    proxy = await GapProxy.start(redisUrl())
    admin = new Redis(redisUrl())
    cache = new RedisCache(proxy.url, prefix)
    publisher = new RedisCache(redisUrl(), prefix)
  })
  afterAll(async () => {
    await cache.close()
    await publisher.close()
    await admin.quit()
    await proxy.close()
  })

  it('runs onReconnect once the channel is subscribed again (not before, not the first time, not after unsubscribe), and a message published from it arrives', async () => {
    const got: string[] = []
    let reconnects = 0
    const stop = await cache.subscribe('news', (m) => got.push(m), {
      onReconnect: () => {
        reconnects++
        // Published from the hook itself: it arrives only if the subscription is already back.
        void publisher.publish('news', `from-hook-${reconnects}`)
      },
    })
    let otherReconnects = 0
    const other = await cache.subscribe('other', () => undefined, { onReconnect: () => otherReconnects++ })
    await other()
    await publisher.publish('news', 'before')
    await waitFor(() => got.includes('before'), { what: 'a message before the kill' })
    expect(reconnects).toBe(0)

    proxy.hold()
    try {
      expect(await killSubscribers(admin, proxy.upstreamPorts())).toBe(1)
      await waitFor(() => proxy.pending > 0, { what: 'the subscriber to reconnect through the proxy' })
      await publisher.publish('news', 'in-gap')
    } finally {
      proxy.release()
    }
    await waitFor(() => got.includes('from-hook-1'), { what: 'the message published from onReconnect' })
    expect(reconnects).toBe(1)
    expect(otherReconnects).toBe(0)
    // Published while nobody was subscribed: lost, which is why the hook exists.
    expect(got).not.toContain('in-gap')

    await publisher.publish('news', 'after')
    await waitFor(() => got.includes('after'), { what: 'a message after the reconnect' })
    await stop()
  })
})
