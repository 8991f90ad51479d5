import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { RedisCache, Signal, type Database } from '@onepipe/sdk'
import { redisUrl, requireService, spawnNode, testDatabase, uniqueName, type NodeProcess } from '@onepipe/testing'

const fixture = fileURLToPath(new URL('./fixtures/updater.mjs', import.meta.url))
let db: Database
let schema: string
let url: string | undefined
let cleanup: () => Promise<void>
const prefix = `${uniqueName('t')}:`
let cache: RedisCache
const procs: NodeProcess[] = []

beforeAll(async () => {
  await requireService('redis')
  ;({ db, schema, url, cleanup } = await testDatabase())
  cache = new RedisCache(redisUrl(), prefix)
})
afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.exited))
  const keys = await cache.client.keys(`${prefix}*`)
  if (keys.length > 0) await cache.client.del(...keys)
  await cache.close()
  await cleanup()
})

const cases = ['redis', 'postgres'].flatMap((backend) => ['concurrent', 'sequential'].map((mode) => ({ backend, mode })))

it.each(cases)('3 processes each run 1,000 update(n => n + 1) on one signal on $backend ($mode): each update applies once, the value is 3,000', { timeout: 180_000 }, async ({ backend, mode }) => {
  const name = `hits-${backend}-${mode}`
  const env = { DATABASE_URL: url ?? '', SCHEMA: schema, REDIS_URL: redisUrl(), PREFIX: prefix, BACKEND: backend, NAME: name, COUNT: '1000', TOTAL: '3000', MODE: mode }
  const group = [0, 1, 2].map(() => spawnNode(fixture, [], env))
  procs.push(...group)
  await Promise.all(group.map((p) => p.waitFor(/READY/)))
  await db.notify('go', '')
  const finals = await Promise.all(group.map((p) => p.waitFor(/FINAL \d+/, 170_000)))
  // Every instance's subscriber heard the last write.
  expect(finals).toEqual(['FINAL 3000', 'FINAL 3000', 'FINAL 3000'])
  expect(await Promise.all(group.map((p) => p.exited))).toEqual([0, 0, 0])
  // Each update resolved with the value its own fn produced: applied once
  // each, to distinct values, they are exactly 1…3,000 between them.
  const values = group.flatMap((p) => JSON.parse(/VALUES (\[.*\])/.exec(p.output())![1]!) as number[])
  expect(values.sort((a, b) => a - b)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1))
  const check = (backend === 'redis' ? Signal.create(name).default(0).cache(cache) : Signal.create(name).default(0).db(db)).build()
  expect(await check.read()).toEqual({ value: 3000, version: 3000 })
})
