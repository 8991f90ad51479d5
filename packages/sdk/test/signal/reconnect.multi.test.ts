import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { RedisCache, Signal, type Database } from '@onepipe/sdk'
import { postgresUrl, redisUrl, requireService, spawnNode, testDatabase, uniqueName, waitFor, type NodeProcess } from '@onepipe/testing'
import { GapProxy, killSubscribers, terminateListeners } from '../../../core/test/gap-proxy.js'

// A subscriber process reaches the store through a proxy. Its notification
// connection (the LISTEN backend, or the Redis pub/sub connection) is killed
// and its reconnect held while this process writes, so the change notice is
// never heard there. Signals never poll: the new value reaches the
// subscriber only through the re-read that follows the reconnect.
const fixture = fileURLToPath(new URL('./fixtures/gap-subscriber.mjs', import.meta.url))
let db: Database
let schema: string
let cleanup: () => Promise<void>
const prefix = `${uniqueName('t')}:`
let cache: RedisCache
let admin: Redis
const proxies: GapProxy[] = []
const procs: NodeProcess[] = []

beforeAll(async () => {
  await requireService('redis')
  ;({ db, schema, cleanup } = await testDatabase())
  cache = new RedisCache(redisUrl(), prefix)
  admin = new Redis(redisUrl())
})
afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.exited))
  for (const p of proxies) await p.close()
  const keys = await cache.client.keys(`${prefix}*`)
  if (keys.length > 0) await cache.client.del(...keys)
  await cache.close()
  await admin.quit()
  await cleanup()
})

const backends = [
  {
    backend: 'postgres' as const,
    url: () => postgresUrl(),
    kill: (p: NodeProcess) => terminateListeners(db, p.pid),
  },
  {
    backend: 'redis' as const,
    url: () => redisUrl(),
    kill: (_p: NodeProcess, proxy: GapProxy) => killSubscribers(admin, proxy.upstreamPorts()),
  },
]

it.each(backends)('a subscriber on $backend in another process gets the value written while its notification connection was gone', async ({ backend, url, kill }) => {
  const proxy = await GapProxy.start(url())
  proxies.push(proxy)
  const name = `gap-${backend}`
  const builder = Signal.create(name).default(0)
  const signal = (backend === 'redis' ? builder.cache(cache) : builder.db(db)).build()
  const env = backend === 'redis' ? { REDIS_URL: proxy.url, PREFIX: prefix } : { DATABASE_URL: proxy.url, SCHEMA: schema }
  const sub = spawnNode(fixture, [], { ...env, BACKEND: backend, NAME: name })
  procs.push(sub)
  await sub.waitFor(/READY/)
  await signal.set(1)
  await sub.waitFor(/VALUE 1 1\n/)

  proxy.hold()
  try {
    expect(await kill(sub, proxy)).toBeGreaterThan(0)
    await waitFor(() => proxy.pending > 0, { what: 'the subscriber to reconnect through the proxy' })
    await signal.set(2)
    expect(sub.output()).not.toMatch(/VALUE 2/)
  } finally {
    proxy.release()
  }
  await sub.waitFor(/VALUE 2 2\n/, 60_000)

  // Notices flow again on the new connection; every version was delivered once, in order.
  await signal.set(3)
  await sub.waitFor(/VALUE 3 3\n/)
  expect([...sub.output().matchAll(/VALUE \S+ (\d+)/g)].map((m) => Number(m[1]))).toEqual([1, 2, 3])
  sub.kill('SIGTERM')
  expect(await sub.exited).toBe(0)
})
