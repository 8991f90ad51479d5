import { ConfigError } from '@onepipe/core'
import { MemoryStreamStore } from './memory/index.js'
import { FileStreamStore } from './file/index.js'
import { RedisStreamStore } from './redis/index.js'
import { PostgresStreamStore } from './postgres/index.js'
import type { StreamStore } from './types.js'

export * from './types.js'
export { MemoryStreamStore } from './memory/index.js'
export { FileStreamStore, type FileStoreOptions, type RecoveryReport } from './file/index.js'
export { RedisStreamStore, type RedisStoreOptions } from './redis/index.js'
export { PostgresStreamStore, type PostgresStoreOptions } from './postgres/index.js'

/** Options every store factory may read; each store uses the ones it needs. */
export interface StoreOptions {
  /** File store: directory holding the stream logs (default `.onepipe/streams`). */
  dir?: string
  /** Redis store: connection URL (default `REDIS_URL`). */
  redisUrl?: string
  /** PostgreSQL store: connection URL (default `DATABASE_URL`). */
  databaseUrl?: string
}

/** Builds one store from options. */
export type StoreFactory = (options: StoreOptions) => StreamStore | Promise<StreamStore>

/**
 * Store kinds by name. Each store registers itself here with one line, so the
 * CLI (`--store <kind>`), `serve()` and tests pick stores by name.
 */
const factories = new Map<string, StoreFactory>([
  ['memory', () => new MemoryStreamStore()],
  ['file', (o) => FileStreamStore.open(o.dir !== undefined ? { dir: o.dir } : {})],
  ['redis', (o) => RedisStreamStore.open(o.redisUrl !== undefined ? { url: o.redisUrl } : {})],
  ['postgres', (o) => PostgresStreamStore.open(o.databaseUrl !== undefined ? { url: o.databaseUrl } : {})],
])

/**
 * Adds (or replaces) a store kind.
 *
 * @example
 * ```ts
 * registerStore('memory', () => new MemoryStreamStore())
 * ```
 */
export function registerStore(kind: string, factory: StoreFactory): void {
  factories.set(kind, factory)
}

/** Names of the registered store kinds. @example storeKinds() // ['memory', 'file', …] */
export function storeKinds(): string[] {
  return [...factories.keys()]
}

/**
 * Creates a store by kind name.
 *
 * @example
 * ```ts
 * const store = await createStore('memory')
 * const server = new UnbrokenServer({ store })
 * ```
 */
export async function createStore(kind: string, options: StoreOptions = {}): Promise<StreamStore> {
  const factory = factories.get(kind)
  if (!factory) {
    throw new ConfigError('STREAMS_UNKNOWN_STORE', `Unknown streams store "${kind}"; use one of: ${storeKinds().join(', ')}`, { kind })
  }
  return factory(options)
}
