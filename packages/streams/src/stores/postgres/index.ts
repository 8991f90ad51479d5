import { ConfigError, Database } from '@onepipe/core'
import {
  InvalidOffsetError,
  decodeOffset,
  encodeOffset,
  type ReadOptions,
  type ReadResult,
  type StoredRecord,
  type StreamMeta,
  type StreamStore,
} from '../types.js'
import type { Batch } from '../batch.js'
import { SharedBackendStore } from '../shared.js'
import * as sql from './sql.js'

/** Options of {@link PostgresStreamStore}: an existing Database, or a URL (+ schema) to open one. */
export interface PostgresStoreOptions {
  /** A core Database to use (not closed by the store). */
  db?: Database
  /** `postgres://…`; default `DATABASE_URL`. Ignored when `db` is given. */
  url?: string
  /** Schema for the tables when the store opens its own Database. */
  schema?: string
}

/** NOTIFY channel (scoped to the Database's schema by core). */
const CHANNEL = 'onepipe_streams'
/** Largest record count one read returns. */
const MAX_RECORDS = 2048

/**
 * Streams in PostgreSQL (tables `_onepipe_streams` and
 * `_onepipe_stream_records`, migration 000007), shared by any number of
 * server processes:
 *
 * - each batch of transactions on a stream is ONE SQL transaction under a
 *   per-stream advisory lock: it reads the meta, decides every queued plan,
 *   inserts the records at their offsets and writes the meta, so offsets are
 *   unique, gapless and strictly increasing across processes, and records
 *   appear together with the meta that counts them;
 * - a read is one statement (one snapshot of meta and records);
 * - live wake-ups in every process through LISTEN/NOTIFY (sent at commit),
 *   and a wake-up of every watcher each time the LISTEN connection comes
 *   back after it was lost, since notices sent meanwhile never arrive.
 *
 * @example
 * ```ts
 * const store = await PostgresStreamStore.open({ url: process.env.DATABASE_URL })
 * const server = new UnbrokenServer({ store })
 * ```
 */
export class PostgresStreamStore extends SharedBackendStore implements StreamStore {
  readonly kind = 'postgres'
  readonly db: Database
  readonly #owned: boolean
  #unlisten: (() => Promise<void>) | undefined

  private constructor(db: Database, owned: boolean) {
    super()
    this.db = db
    this.#owned = owned
  }

  /**
   * Opens the store: migrates the database (first use) and starts listening
   * for changes before resolving, so every `watch` is live from its first call.
   *
   * @example
   * ```ts
   * const store = await PostgresStreamStore.open({ db })
   * ```
   */
  static async open(options: PostgresStoreOptions = {}): Promise<PostgresStreamStore> {
    let db = options.db
    const owned = !db
    if (!db) {
      const url = options.url ?? process.env.DATABASE_URL
      if (!url) throw new ConfigError('STREAMS_NO_DATABASE', 'The postgres streams store needs a database: set DATABASE_URL or pass --database-url.')
      const builder = Database.create('streams').postgres(url)
      db = (options.schema ? builder.schema(options.schema) : builder).build()
    }
    const store = new PostgresStreamStore(db, owned)
    try {
      // A NOTIFY sent while the listening connection was down is gone: after
      // it listens again, every waiting reader reads once more.
      store.#unlisten = await db.listen(CHANNEL, (payload) => store.onNotice(payload), { onReconnect: () => store.wakeAll() })
    } catch (err) {
      if (owned) await db.close()
      throw err
    }
    return store
  }

  head(path: string): Promise<StreamMeta | undefined> {
    return sql.selectMeta(this.db, path)
  }

  /** One SQL transaction per batch, under the stream's advisory lock. */
  protected persist(path: string, decide: (current: StreamMeta | undefined) => Batch): Promise<Batch> {
    return this.db.transaction(async (tx) => {
      await sql.lockStream(tx, `${this.db.channel(CHANNEL)}:${path}`)
      const batch = decide(await sql.selectMeta(tx, path))
      if (batch.kind === 'none') return batch
      if (batch.kind === 'delete') {
        await sql.deleteRecords(tx, path)
        await sql.deleteStream(tx, path)
      } else if (batch.meta) {
        if (batch.kind === 'create') await sql.deleteRecords(tx, path)
        const rows = batch.records.map((rec) => {
          const at = decodeOffset(rec.offset)
          if (!at) throw new InvalidOffsetError(rec.offset, 'it is not a well-formed offset')
          return { seq: at.records, bytes: at.bytes, rec }
        })
        await sql.insertRecords(tx, path, rows)
        await sql.upsertMeta(tx, path, batch.meta)
      }
      await sql.notifyChange(tx, this.db.channel(CHANNEL), this.notice(path))
      return batch
    })
  }

  async read(path: string, options: ReadOptions): Promise<ReadResult> {
    const from = decodeOffset(options.from)
    if (!from) throw new InvalidOffsetError(options.from, 'it is not a well-formed offset')
    const until = options.until !== undefined ? decodeOffset(options.until) : undefined
    const limit = Math.min(options.maxRecords ?? MAX_RECORDS, MAX_RECORDS)
    const maxBytes = Math.min(options.maxBytes ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
    const rows = await sql.selectRecords(this.db, path, from.records, until ? until.records : Number.MAX_SAFE_INTEGER, limit, maxBytes)
    const meta = rows[0]?.meta
    if (!meta) return { meta: undefined, records: [] }
    if (options.from === meta.nextOffset) return { meta, records: [] }
    const first = rows[0]
    if (first?.seq !== from.records || first.bytes !== from.bytes) {
      // Either no record starts there, or `until` cut everything (a valid boundary then still has a row).
      if (until && until.records <= from.records) return { meta, records: [] }
      throw new InvalidOffsetError(options.from)
    }
    const records: StoredRecord[] = []
    for (const r of rows) {
      if (r.seq === null || r.bytes === null || r.data === null) continue
      const data = r.data instanceof Buffer ? r.data : Buffer.from(r.data)
      records.push({ offset: encodeOffset(r.seq, r.bytes), next: encodeOffset(r.seq + 1, r.bytes + data.byteLength), data, count: r.count ?? 1 })
    }
    return { meta, records }
  }

  expired(now: number, limit: number): Promise<string[]> {
    return sql.selectExpired(this.db, now, limit)
  }

  async close(): Promise<void> {
    if (!(await this.shutdown())) return
    await this.#unlisten?.()
    if (this.#owned) await this.db.close()
  }
}
