import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { Database, MemoryCache, RedisCache, type Cache } from '@onepipe/core'

/**
 * Which backends tests run against: `real` (PostgreSQL + Redis, the default)
 * or `embedded` (PGlite + memory). Set with `ONEPIPE_TEST_BACKEND`; any other
 * value is an error, so a typo cannot run one suite while CI reports another.
 *
 * @example
 * ```ts
 * if (testBackend() === 'real') { … }
 * ```
 */
export function testBackend(): 'real' | 'embedded' {
  const v = process.env.ONEPIPE_TEST_BACKEND
  if (v === undefined || v === '' || v === 'real') return 'real'
  if (v === 'embedded') return 'embedded'
  throw new Error(`ONEPIPE_TEST_BACKEND must be "real" or "embedded", not "${v}"`)
}

/** The PostgreSQL server tests use (`TEST_DATABASE_URL`, else local trust auth). */
export function postgresUrl(): string {
  return process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
}

/** The Redis server tests use (`TEST_REDIS_URL`, else local). */
export function redisUrl(): string {
  return process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
}

/**
 * A name unique to this test run, valid as an SQL identifier.
 *
 * @example
 * ```ts
 * const schema = uniqueName('t') // "t_1a2b3c4d5e6f"
 * ```
 */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`
}

const reachable = new Map<string, Promise<boolean>>()
function canConnect(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url)
  const key = `${u.hostname}:${u.port || defaultPort}`
  let p = reachable.get(key)
  if (!p) {
    p = new Promise((resolve) => {
      const s = connect({ host: u.hostname, port: Number(u.port || defaultPort) })
      s.setTimeout(2000)
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('timeout', () => {
        s.destroy()
        resolve(false)
      })
      s.once('error', () => resolve(false))
    })
    reachable.set(key, p)
  }
  return p
}

/**
 * Fails loudly when a service a test needs is not reachable. Tests never
 * skip silently: under `CI=true` and locally alike a missing service is an
 * error that names how to start it.
 *
 * @example
 * ```ts
 * beforeAll(() => requireService('postgres'))
 * ```
 */
export async function requireService(which: 'postgres' | 'redis'): Promise<void> {
  const ok = which === 'postgres' ? await canConnect(postgresUrl(), 5432) : await canConnect(redisUrl(), 6379)
  if (!ok) {
    const url = which === 'postgres' ? postgresUrl() : redisUrl()
    throw new Error(`${which} is not reachable at ${url}. Start it (see .ci/run) or run the embedded suite with ONEPIPE_TEST_BACKEND=embedded.`)
  }
}

/**
 * A Database in a fresh schema: PostgreSQL (real backend) or in-memory
 * PGlite (embedded). `cleanup()` drops the schema and closes the pool.
 *
 * @example
 * ```ts
 * const { db, cleanup } = await testDatabase()
 * afterAll(cleanup)
 * ```
 */
export async function testDatabase(options: { backend?: 'real' | 'embedded'; max?: number } = {}): Promise<{ db: Database; schema: string; url: string | undefined; cleanup: () => Promise<void> }> {
  const backend = options.backend ?? testBackend()
  const schema = uniqueName('t')
  if (backend === 'embedded') {
    const db = Database.create('test').pglite('memory://').schema(schema).build()
    await db.ready()
    return { db, schema, url: undefined, cleanup: () => db.close() }
  }
  await requireService('postgres')
  const url = postgresUrl()
  const db = Database.create('test').postgres(url).schema(schema).pool({ max: options.max ?? 10 }).build()
  await db.ready()
  return {
    db,
    schema,
    url,
    cleanup: async () => {
      // Tenants' schemas (`<schema>__t_<name>`) go with the test's.
      const tenants = await db.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", [`${schema}__`])
      for (const t of tenants) await db.execute(`DROP SCHEMA IF EXISTS "${t.nspname}" CASCADE`)
      await db.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await db.close()
    },
  }
}

/**
 * A cache in its own namespace: Redis (real backend) or memory (embedded).
 *
 * @example
 * ```ts
 * const { cache, cleanup } = await testCache()
 * ```
 */
export async function testCache(options: { backend?: 'real' | 'embedded' } = {}): Promise<{ cache: Cache; prefix: string; cleanup: () => Promise<void> }> {
  const backend = options.backend ?? testBackend()
  const prefix = `${uniqueName('t')}:`
  if (backend === 'embedded') {
    const cache = new MemoryCache()
    return { cache, prefix, cleanup: () => cache.close() }
  }
  await requireService('redis')
  const cache = new RedisCache(redisUrl(), prefix)
  return {
    cache,
    prefix,
    cleanup: async () => {
      const keys = await cache.client.keys(`${prefix}*`)
      if (keys.length > 0) await cache.client.del(...keys)
      await cache.close()
    },
  }
}
