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

/** What a compare-and-swap answers: the version it wrote, or what it found instead when known. */
export type CasResult = { ok: true; version: number } | { ok: false; current?: VersionedValue | undefined }

/**
 * Where a signal's value lives. Every write moves the version forward by the
 * number of updates it carries; `cas` writes only when the stored version
 * still equals `expected`, which is what lets concurrent `update`s on many
 * instances lose nothing. Values arrive as JSON text already checked by
 * `encodeValue`.
 */
export interface SignalStore {
  readonly kind: 'redis' | 'memory' | 'postgres'
  read(): Promise<VersionedValue | undefined>
  /**
   * Writes `text` as version `expected + count` when the version is still
   * `expected`; otherwise `ok: false`, with the current value when the store
   * could read it in the same step (so a retry needs no separate read).
   */
  cas(expected: number, text: string, count: number): Promise<CasResult>
  /** Writes unconditionally; the new version. */
  write(text: string): Promise<number>
  /**
   * Calls `fn` on every change made by any instance, and with the value as
   * read anew each time a lost notification connection is back (changes in
   * the gap were never announced; an unchanged version is for the caller
   * to drop).
   */
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

/**
 * Watches changes with `listen`, and once a lost notification connection is
 * back (`listen` calls its `recheck` then) reads the value and hands it on
 * as a change: what was written in the gap was never announced. The signal
 * drops it unless its version is newer than the last one it saw. A read that
 * fails is tried again, with backoff, while the watch lasts.
 */
async function watchWithRecheck(
  read: () => Promise<VersionedValue | undefined>,
  fn: (c: SignalChange) => void,
  listen: (onChange: (c: SignalChange) => void, recheck: () => void) => Promise<() => Promise<void>>,
): Promise<() => Promise<void>> {
  let live = true
  const recheck = async () => {
    for (let backoff = 100; live; backoff = Math.min(backoff * 2, 5000)) {
      try {
        const r = await read()
        if (r && live) fn({ version: r.version, value: r.value, hasValue: true })
        return
      } catch {
        await new Promise((res) => setTimeout(res, backoff).unref())
      }
    }
  }
  // `live` also silences a listener that outlives its stop (a LISTEN re-made after a reconnect can).
  const stop = await listen(
    (c) => {
      if (live) fn(c)
    },
    () => void recheck(),
  )
  return async () => {
    live = false
    await stop()
  }
}

// Compare-and-swap and publish in one atomic script, so the change notice
// order equals the version order. ARGV[1] = expected version, or -1 for an
// unconditional write; ARGV[4] = how many versions the write stands for. A
// lost swap answers the current version and value, so the caller's retry
// costs no extra round trip.
const CAS_SCRIPT = `
local cur = redis.call('HMGET', KEYS[1], 'version', 'value')
local v = tonumber(cur[1] or '0')
if ARGV[1] ~= '-1' and v ~= tonumber(ARGV[1]) then
  if cur[2] then return {-1, v, cur[2]} end
  return {-1, v}
end
local nv = v + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'version', nv, 'value', ARGV[2])
redis.call('PUBLISH', ARGV[3], '{"version":' .. nv .. ',"value":' .. ARGV[2] .. '}')
return {nv}`

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

  async #run(expected: number, text: string, count: number): Promise<[number, number?, string?]> {
    return (await this.cache.client.eval(CAS_SCRIPT, 1, this.#key, String(expected), text, this.cache.prefix + this.#channel, String(count))) as [number, number?, string?]
  }

  async cas(expected: number, text: string, count: number): Promise<CasResult> {
    const [v, version, value] = await this.#run(expected, text, count)
    if (v >= 0) return { ok: true, version: v }
    return { ok: false, current: version === undefined || value === undefined ? undefined : { version, value: JSON.parse(value) as unknown } }
  }

  async write(text: string): Promise<number> {
    return (await this.#run(-1, text, 1))[0]
  }

  watch(fn: (c: SignalChange) => void): Promise<() => Promise<void>> {
    return watchWithRecheck(
      () => this.read(),
      fn,
      (onChange, recheck) =>
        this.cache.subscribe(
          this.#channel,
          (m) => {
            const c = parseChange(m)
            if (c) onChange(c)
          },
          { onReconnect: recheck },
        ),
    )
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

  async #run(expected: number, text: string, count: number): Promise<CasResult> {
    const cur = this.#values.get(this.name)
    if (expected >= 0 && (cur?.version ?? 0) !== expected) return { ok: false }
    const version = (cur?.version ?? 0) + count
    this.#values.set(this.name, { version, value: JSON.parse(text) as unknown })
    await this.cache.publish(this.#channel, `{"version":${version},"value":${text}}`)
    return { ok: true, version }
  }

  cas(expected: number, text: string, count: number): Promise<CasResult> {
    return this.#run(expected, text, count)
  }

  async write(text: string): Promise<number> {
    const r = await this.#run(-1, text, 1)
    return r.ok ? r.version : 0
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

// The swap and, when it loses, the value it lost to, in one statement. A
// loser takes no lock (so costs no WAL flush). When the UPDATE waited for a
// concurrent writer, the row it lost to is newer than this statement's
// snapshot: then it answers no value and the caller reads.
async function casUpdate(q: Queryable, name: string, value: string, channel: string, expected: number, count: number): Promise<CasResult> {
  const rows = await q.query<{ ok: boolean; version: number; value: unknown }>(
    `WITH w AS (
       UPDATE _onepipe_signals SET value = $2::text::jsonb, version = version + $5, updated_at = now()
       WHERE name = $1 AND version = $4 RETURNING version, value
     )
     SELECT true AS ok, w.version, NULL::jsonb AS value, ${notifySql()} IS NULL AS n FROM w
     UNION ALL
     SELECT false, s.version, s.value, NULL FROM _onepipe_signals s WHERE s.name = $1 AND s.version <> $4 AND NOT EXISTS (SELECT 1 FROM w)`,
    [name, value, channel, expected, count],
  )
  const [r] = rows
  if (!r) return { ok: false }
  return r.ok ? { ok: true, version: r.version } : { ok: false, current: { version: r.version, value: r.value } }
}

async function casInsert(q: Queryable, name: string, value: string, channel: string, count: number): Promise<number | undefined> {
  const [r] = await q.query<{ version: number }>(
    `WITH w AS (
       INSERT INTO _onepipe_signals (name, value, version) VALUES ($1, $2::text::jsonb, $4)
       ON CONFLICT (name) DO NOTHING RETURNING version, value
     ) SELECT w.version, ${notifySql()} IS NULL AS n FROM w`,
    [name, value, channel, count],
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

/**
 * A signal in `_onepipe_signals`: every write is a compare-and-swap on the
 * version column, with a NOTIFY in the same statement (so notices arrive in
 * commit order, which is version order).
 */
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

  async cas(expected: number, text: string, count: number): Promise<CasResult> {
    const channel = this.db.channel(PG_CHANNEL)
    if (expected !== 0) return casUpdate(this.db, this.name, text, channel, expected, count)
    const version = await casInsert(this.db, this.name, text, channel, count)
    return version === undefined ? { ok: false } : { ok: true, version }
  }

  write(text: string): Promise<number> {
    return upsert(this.db, this.name, text, this.db.channel(PG_CHANNEL))
  }

  watch(fn: (c: SignalChange) => void): Promise<() => Promise<void>> {
    return watchWithRecheck(
      () => this.read(),
      fn,
      (onChange, recheck) =>
        this.db.listen(
          PG_CHANNEL,
          (payload) => {
            const m = JSON.parse(payload) as { n: string; version: number; big: boolean; value: unknown }
            if (m.n !== this.name) return
            onChange(m.big ? { version: m.version, hasValue: false } : { version: m.version, value: m.value, hasValue: true })
          },
          { onReconnect: recheck },
        ),
    )
  }
}

/** The store for a cache: Redis or process memory. */
export function cacheStore(cache: CacheLike, name: string): SignalStore {
  const kind = (cache as { kind?: unknown }).kind
  if (kind === 'redis') return new RedisSignalStore(cache as RedisCache, name)
  if (kind === 'memory') return new MemorySignalStore(cache as MemoryCache, name)
  throw new TypeError('Signal.cache() takes a RedisCache or a MemoryCache from @onepipe/core')
}
