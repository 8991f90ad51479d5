import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { TransportError } from '@onepipe/core'
import {
  InvalidOffsetError,
  advanceOffset,
  decodeOffset,
  type ReadOptions,
  type ReadResult,
  type StoredRecord,
  type StreamMeta,
  type StreamStore,
} from '../types.js'
import type { Batch } from '../batch.js'
import { SharedBackendStore } from '../shared.js'
import { COMMIT_SCRIPT } from './script.js'

/** Options of {@link RedisStreamStore}. */
export interface RedisStoreOptions {
  /** Connection URL. Default `REDIS_URL`, else `redis://127.0.0.1:6379`. */
  url?: string
  /** Prefix of every key and of the change channel. Default `onepipe:streams:`. */
  prefix?: string
}

interface Stored {
  meta: StreamMeta | undefined
  /** Incarnation id: changes when the path is re-created, so a stale decision never applies to a new stream. */
  inc: string
}

type CommitCommand = (mkey: string, lkey: string, ekey: string, ...args: (string | Buffer)[]) => Promise<number>

/** Records fetched per XRANGE page of one read; a read returns at most a few pages. */
const FIRST_PAGE = 64
const MAX_RECORDS = 2048

/**
 * Streams in Redis, shared by any number of server processes:
 *
 * - per stream a hash `{prefix}m:{path}` (meta JSON, version, incarnation)
 *   and a Redis Stream `{prefix}l:{path}` with one entry per record, whose
 *   entry id is the record number + 1, so a read seeks with one XRANGE;
 * - a batch of transactions is decided in this process and applied by ONE
 *   Lua script that first checks the version and incarnation it was decided
 *   against (compare-and-set), then XADDs the records, writes the meta and
 *   PUBLISHes the change; on a conflict the batch is decided again. Offsets
 *   are therefore unique and strictly increasing across processes;
 * - live wake-ups in every process through one pub/sub channel (and a
 *   wake-up of every watcher once it is subscribed again after a reconnect,
 *   so nothing is missed);
 * - expiry via a sorted set `{prefix}expiry`.
 *
 * An append is acknowledged once Redis executed the script: it is as
 * durable as the server's persistence is configured (`appendonly yes` with
 * `appendfsync always` for fsync-per-write; the default `everysec` can lose
 * the last second on a power cut).
 *
 * @example
 * ```ts
 * const store = await RedisStreamStore.open({ url: process.env.REDIS_URL })
 * const server = new UnbrokenServer({ store })
 * ```
 */
export class RedisStreamStore extends SharedBackendStore implements StreamStore {
  readonly kind = 'redis'
  readonly prefix: string
  readonly #redis: Redis
  readonly #sub: Redis
  readonly #channel: string

  private constructor(options: RedisStoreOptions) {
    super()
    const url = options.url ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
    this.prefix = options.prefix ?? 'onepipe:streams:'
    this.#channel = `${this.prefix}changes`
    this.#redis = new Redis(url, { maxRetriesPerRequest: 2, lazyConnect: true })
    // Subscribed again by hand after a reconnect (see open), so that the wake-up follows the subscription.
    this.#sub = new Redis(url, { maxRetriesPerRequest: 2, lazyConnect: true, autoResubscribe: false })
    this.#redis.defineCommand('streamsCommit', { numberOfKeys: 3, lua: COMMIT_SCRIPT })
    this.#redis.on('error', () => undefined)
    this.#sub.on('error', () => undefined)
  }

  /**
   * Connects and subscribes to change notices before resolving, so every
   * `watch` is live from its first call.
   *
   * @example
   * ```ts
   * const store = await RedisStreamStore.open({ url: 'redis://127.0.0.1:6379', prefix: 'myapp:streams:' })
   * ```
   */
  static async open(options: RedisStoreOptions = {}): Promise<RedisStreamStore> {
    const store = new RedisStreamStore(options)
    try {
      await store.#redis.connect()
      await store.#sub.connect()
      store.#sub.on('message', (_channel: string, message: string) => store.onNotice(message))
      await store.#sub.subscribe(store.#channel)
      // After a reconnect, notices sent meanwhile are lost: wake every watcher
      // once. Only after subscribing again: ioredis says 'ready' before its own
      // resubscribe, and a re-check read before the subscription is back could
      // miss a change made in between. A failed subscribe waits for the next 'ready'.
      store.#sub.on('ready', () => {
        store.#sub.subscribe(store.#channel).then(
          () => store.wakeAll(),
          () => undefined,
        )
      })
    } catch (err) {
      store.#redis.disconnect()
      store.#sub.disconnect()
      throw new TransportError('STREAM_REDIS_UNAVAILABLE', `Cannot reach Redis for the streams store: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
    return store
  }

  #metaKey(path: string): string {
    return `${this.prefix}m:${path}`
  }

  #logKey(path: string): string {
    return `${this.prefix}l:${path}`
  }

  async #load(path: string): Promise<Stored> {
    const [json, inc] = await this.#redis.hmget(this.#metaKey(path), 'meta', 'inc')
    return { meta: json ? (JSON.parse(json) as StreamMeta) : undefined, inc: inc ?? '' }
  }

  async head(path: string): Promise<StreamMeta | undefined> {
    return (await this.#load(path)).meta
  }

  /** Decides against the current meta and applies with compare-and-set; decides again after a conflict. */
  protected async persist(path: string, decide: (current: StreamMeta | undefined) => Batch): Promise<Batch> {
    const commit = (this.#redis as unknown as { streamsCommit: CommitCommand }).streamsCommit.bind(this.#redis)
    for (;;) {
      const cur = await this.#load(path)
      const batch = decide(cur.meta)
      if (batch.kind === 'none') return batch
      const inc = batch.kind === 'create' ? randomBytes(8).toString('hex') : cur.inc
      const meta = batch.meta
      const args: (string | Buffer)[] = [
        batch.kind,
        cur.inc,
        cur.meta ? String(cur.meta.version) : '',
        inc,
        meta ? String(meta.version) : '',
        meta ? JSON.stringify(meta) : '',
        meta?.expiresAt !== undefined ? String(meta.expiresAt) : '',
        path,
        this.#channel,
        this.notice(path),
        String(batch.records.length),
      ]
      for (const r of batch.records) {
        const at = decodeOffset(r.offset)
        if (!at) throw new InvalidOffsetError(r.offset, 'it is not a well-formed offset')
        args.push(`${at.records + 1}-0`, r.offset, String(r.count), Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength))
      }
      const ok = await commit(this.#metaKey(path), this.#logKey(path), `${this.prefix}expiry`, ...args)
      if (ok === 1) return batch
    }
  }

  async read(path: string, options: ReadOptions): Promise<ReadResult> {
    const from = decodeOffset(options.from)
    if (!from) throw new InvalidOffsetError(options.from, 'it is not a well-formed offset')
    const until = options.until !== undefined ? decodeOffset(options.until) : undefined
    const maxRecords = Math.min(options.maxRecords ?? MAX_RECORDS, MAX_RECORDS)
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY
    // Meta and the first page in one MULTI: a consistent snapshot.
    const res = await this.#redis
      .multi()
      .hget(this.#metaKey(path), 'meta')
      .xrangeBuffer(this.#logKey(path), `${from.records + 1}-0`, '+', 'COUNT', Math.min(FIRST_PAGE, maxRecords))
      .exec()
    if (!res) throw new TransportError('STREAM_REDIS_READ', 'Redis aborted a streams read.')
    const [metaRes, pageRes] = res
    const failed = metaRes?.[0] ?? pageRes?.[0]
    if (failed) throw failed
    const json = metaRes?.[1] as string | null
    if (!json) return { meta: undefined, records: [] }
    const meta = JSON.parse(json) as StreamMeta
    if (options.from === meta.nextOffset) return { meta, records: [] }
    const tail = decodeOffset(meta.nextOffset)
    let page = pageRes?.[1] as [Buffer, Buffer[]][]
    const first = page[0]
    if (!tail || !first || first[0].toString() !== `${from.records + 1}-0` || fieldOf(first[1], 'o')?.toString() !== options.from) {
      throw new InvalidOffsetError(options.from)
    }
    const lastRecord = Math.min(tail.records, until ? until.records : tail.records)
    const records: StoredRecord[] = []
    let bytes = 0
    let size = FIRST_PAGE
    for (;;) {
      for (const [id, fields] of page) {
        const n = Number(id.toString().split('-')[0]) - 1
        const data = fieldOf(fields, 'd') ?? Buffer.alloc(0)
        if (n >= lastRecord || records.length >= maxRecords) return { meta, records }
        if (records.length > 0 && bytes + data.byteLength > maxBytes) return { meta, records }
        const offset = fieldOf(fields, 'o')?.toString() ?? ''
        records.push({ offset, next: advanceOffset(offset, data.byteLength), data, count: Number(fieldOf(fields, 'c')?.toString() ?? '1') })
        bytes += data.byteLength
      }
      const last = page[page.length - 1]
      if (!last || page.length < size) return { meta, records }
      size = Math.min(size * 4, maxRecords - records.length)
      const next = Number(last[0].toString().split('-')[0]) + 1
      if (size <= 0 || next - 1 >= lastRecord) return { meta, records }
      page = (await this.#redis.xrangeBuffer(this.#logKey(path), `${next}-0`, `${lastRecord}-0`, 'COUNT', size))
    }
  }

  async expired(now: number, limit: number): Promise<string[]> {
    return this.#redis.zrangebyscore(`${this.prefix}expiry`, '-inf', now, 'LIMIT', 0, limit)
  }

  async close(): Promise<void> {
    if (!(await this.shutdown())) return
    await this.#sub.quit()
    await this.#redis.quit()
  }
}

function fieldOf(fields: Buffer[], name: string): Buffer | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i]?.toString() === name) return fields[i + 1]
  }
  return undefined
}
