import type { MemoryCache, RedisCache, CacheLike, Database, Queryable } from '@onepipe/core'

/** A value with the version that wrote it; version 0 means never written (the default). */
export interface VersionedValue<T = unknown> {
  value: T
  version: number
}

/** A change notice: the new version, with the value when the transport carried it. */
export interface SignalChange {
  version: number
  value?: unknown
  hasValue: boolean
}

/**
 * Where a signal's value lives. Every write bumps the version; `cas` writes
 * only when the stored version still equals `expected`, which is what lets
 * concurrent `update`s on many instances lose nothing.
 */
export interface SignalStore {
  readonly kind: 'redis' | 'memory' | 'postgres'
  read(): Promise<VersionedValue | undefined>
  /** Writes when the version is still `expected`; the new version, or undefined when someone else wrote first. */
  cas(expected: number, value: unknown): Promise<number | undefined>
  /** Writes unconditionally; the new version. */
  write(value: unknown): Promise<number>
  /** Calls `fn` on every change made by any instance. */
  watch(fn: (c: SignalChange) => void): Promise<() => Promise<void>>
}

function parseChange(message: string): SignalChange | undefined {
  try {
    const m = JSON.parse(message) as { version?: unknown; value?: unknown }
    if (typeof m.version !== 'number') return undefined
    return { version: m.version, value: m.value, hasValue: 'value' in m }
  } catch {
    return undefined
  }
}

// Compare-and-swap and publish in one atomic script, so the change notice
// order equals the version order. ARGV[1] = expected version, or -1 for an
// unconditional write.
const CAS_SCRIPT = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[1] ~= '-1' and cur ~= tonumber(ARGV[1]) then return -1 end
local nv = cur + 1
redis.call('HSET', KEYS[1], 'version', nv, 'value', ARGV[2])
redis.call('PUBLISH', ARGV[3], '{"version":' .. nv .. ',"value":' .. ARGV[2] .. '}')
return nv`

/** A signal in Redis: a hash `{ version, value }` changed only by a Lua compare-and-swap that also publishes the change. */
export class RedisSignalStore implements SignalStore {
  readonly kind = 'redis' as const
  readonly #key: string
  readonly #channel: string
  constructor(
    private readonly cache: RedisCache,
    name: string,
  ) {
    this.#key = `${cache.prefix}onepipe:signal:${name}`
    this.#channel = `onepipe:signal:${name}`
  }

  async read(): Promise<VersionedValue | undefined> {
    const [version, value] = await this.cache.client.hmget(this.#key, 'version', 'value')
    if (version == null || value == null) return undefined
    return { version: Number(version), value: JSON.parse(value) as unknown }
  }

  async #run(expected: number, value: unknown): Promise<number> {
    return (await this.cache.client.eval(CAS_SCRIPT, 1, this.#key, String(expected), JSON.stringify(value), this.cache.prefix + this.#channel)) as number
  }

  async cas(expected: number, value: unknown): Promise<number | undefined> {
    const v = await this.#run(expected, value)
    return v < 0 ? undefined : v
  }

  write(value: unknown): Promise<number> {
    return this.#run(-1, value)
  }

  watch(fn: (c: SignalChange) => void): Promise<() => Promise<void>> {
    return this.cache.subscribe(this.#channel, (m) => {
      const c = parseChange(m)
      if (c) fn(c)
    })
  }
}

const memoryValues = new WeakMap<MemoryCache, Map<string, VersionedValue>>()

/** A signal in the in-process cache (one process: the compare-and-swap is a plain check in one tick). */
export class MemorySignalStore implements SignalStore {
  readonly kind = 'memory' as const
  readonly #values: Map<string, VersionedValue>
  readonly #channel: string
  constructor(
    private readonly cache: MemoryCache,
    private readonly name: string,
  ) {
    let m = memoryValues.get(cache)
    if (!m) memoryValues.set(cache, (m = new Map<string, VersionedValue>()))
    this.#values = m
    this.#channel = `onepipe:signal:${name}`
  }

  async read(): Promise<VersionedValue | undefined> {
    const v = this.#values.get(this.name)
    return v && { version: v.version, value: structuredClone(v.value) }
  }

  async cas(expected: number, value: unknown): Promise<number | undefined> {
    const cur = this.#values.get(this.name)?.version ?? 0
    if (expected >= 0 && cur !== expected) return undefined
    const version = cur + 1
    const stored = JSON.parse(JSON.stringify(value)) as unknown
    this.#values.set(this.name, { version, value: stored })
    await this.cache.publish(this.#channel, JSON.stringify({ version, value: stored }))
    return version
  }

  async write(value: unknown): Promise<number> {
    return (await this.cas(-1, value)) as number
  }

  watch(fn: (c: SignalChange) => void): Promise<() => Promise<void>> {
    return this.cache.subscribe(this.#channel, (m) => {
      const c = parseChange(m)
      if (c) fn(c)
    })
  }
}

const PG_CHANNEL = 'onepipe_signals'
// Values up to this size ride in the NOTIFY payload (limit 8000 bytes); larger ones are re-read.
const NOTIFY_VALUE_MAX = 7000

function notifySql(): string {
  return `pg_notify($3, json_build_object('n', $1::text, 'version', w.version, 'big', octet_length(w.value::text) > ${NOTIFY_VALUE_MAX},
            'value', CASE WHEN octet_length(w.value::text) > ${NOTIFY_VALUE_MAX} THEN NULL ELSE w.value END)::text)`
}

async function casUpdate(q: Queryable, name: string, value: string, channel: string, expected: number): Promise<number | undefined> {
  const [r] = await q.query<{ version: number }>(
    `WITH w AS (
       UPDATE _onepipe_signals SET value = $2::text::jsonb, version = version + 1, updated_at = now()
       WHERE name = $1 AND version = $4 RETURNING version, value
     ) SELECT w.version, ${notifySql()} IS NULL AS n FROM w`,
    [name, value, channel, expected],
  )
  return r?.version
}

async function casInsert(q: Queryable, name: string, value: string, channel: string): Promise<number | undefined> {
  const [r] = await q.query<{ version: number }>(
    `WITH w AS (
       INSERT INTO _onepipe_signals (name, value, version) VALUES ($1, $2::text::jsonb, 1)
       ON CONFLICT (name) DO NOTHING RETURNING version, value
     ) SELECT w.version, ${notifySql()} IS NULL AS n FROM w`,
    [name, value, channel],
  )
  return r?.version
}

async function upsert(q: Queryable, name: string, value: string, channel: string): Promise<number> {
  const [r] = await q.query<{ version: number }>(
    `WITH w AS (
       INSERT INTO _onepipe_signals AS s (name, value, version) VALUES ($1, $2::text::jsonb, 1)
       ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, version = s.version + 1, updated_at = now()
       RETURNING version, value
     ) SELECT w.version, ${notifySql()} IS NULL AS n FROM w`,
    [name, value, channel],
  )
  return r?.version ?? 0
}

/** A signal in `_onepipe_signals`: every write is a compare-and-swap on the version column, with a NOTIFY in the same statement. */
export class PgSignalStore implements SignalStore {
  readonly kind = 'postgres' as const
  constructor(
    private readonly db: Database,
    private readonly name: string,
  ) {}

  async read(): Promise<VersionedValue | undefined> {
    const [r] = await this.db.query<VersionedValue>('SELECT value, version FROM _onepipe_signals WHERE name = $1', [this.name])
    return r
  }

  cas(expected: number, value: unknown): Promise<number | undefined> {
    const json = JSON.stringify(value)
    const channel = this.db.channel(PG_CHANNEL)
    return expected === 0 ? casInsert(this.db, this.name, json, channel) : casUpdate(this.db, this.name, json, channel, expected)
  }

  write(value: unknown): Promise<number> {
    return upsert(this.db, this.name, JSON.stringify(value), this.db.channel(PG_CHANNEL))
  }

  watch(fn: (c: SignalChange) => void): Promise<() => Promise<void>> {
    return this.db.listen(PG_CHANNEL, (payload) => {
      const m = JSON.parse(payload) as { n: string; version: number; big: boolean; value: unknown }
      if (m.n !== this.name) return
      fn(m.big ? { version: m.version, hasValue: false } : { version: m.version, value: m.value, hasValue: true })
    })
  }
}

/** The store for a cache: Redis or process memory. */
export function cacheStore(cache: CacheLike, name: string): SignalStore {
  const kind = (cache as { kind?: unknown }).kind
  if (kind === 'redis') return new RedisSignalStore(cache as RedisCache, name)
  if (kind === 'memory') return new MemorySignalStore(cache as MemoryCache, name)
  throw new TypeError('Signal.cache() takes a RedisCache or a MemoryCache from @onepipe/core')
}
