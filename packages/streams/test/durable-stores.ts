/**
 * Test helpers for the shared-backend stores: each test gets its own Redis
 * key prefix or PostgreSQL schema, dropped afterwards.
 */
import { Redis } from 'ioredis'
import { Database } from '@onepipe/core'
import { redisUrl, requireService, testDatabase, uniqueName } from '@onepipe/testing'
import { PostgresStreamStore, RedisStreamStore } from '../src/stores/index.js'

async function dropPrefix(prefix: string): Promise<void> {
  const redis = new Redis(redisUrl())
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    await redis.quit()
  }
}

/** A Redis store under a fresh key prefix, a way to open more on the same prefix, and cleanup. */
export async function freshRedisStore(): Promise<{ store: RedisStreamStore; reopen: () => Promise<RedisStreamStore>; cleanup: () => Promise<void>; prefix: string }> {
  await requireService('redis')
  const prefix = `${uniqueName('streams')}:`
  const open = () => RedisStreamStore.open({ url: redisUrl(), prefix })
  return { store: await open(), reopen: open, cleanup: () => dropPrefix(prefix), prefix }
}

/** A PostgreSQL store in a fresh schema (PGlite when ONEPIPE_TEST_BACKEND=embedded); `reopen` opens a second Database on it. */
export async function freshPostgresStore(): Promise<{ store: PostgresStreamStore; reopen: () => Promise<PostgresStreamStore>; cleanup: () => Promise<void>; schema: string; url: string | undefined }> {
  const { db, schema, url, cleanup } = await testDatabase()
  const extra: Database[] = []
  const reopen = async () => {
    if (!url) return PostgresStreamStore.open({ db })
    const other = Database.create('streams-test').postgres(url).schema(schema).build()
    extra.push(other)
    return PostgresStreamStore.open({ db: other })
  }
  return {
    store: await PostgresStreamStore.open({ db }),
    reopen,
    schema,
    url,
    cleanup: async () => {
      for (const d of extra) await d.close()
      await cleanup()
    },
  }
}
