import { mkdir, readdir, rename, unlink } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { lockDirectory, OnePipeError, TransportError, type DirLock } from '@onepipe/core'
import {
  type ReadOptions,
  type ReadResult,
  type StreamMeta,
  type StreamPlan,
  type StreamStore,
  type TransactResult,
} from '../types.js'
import { PathWatchers } from '../watchers.js'
import { StreamLog, syncDir } from './log.js'
import { CacheBudget } from './cache.js'
import { TransactionQueues, type Batch } from '../batch.js'
import { LOG_SUFFIX, TMP_SUFFIX, logFileName } from './names.js'

/** Options of {@link FileStreamStore}. */
export interface FileStoreOptions {
  /** Directory of the stream logs. Default `.onepipe/streams`. */
  dir?: string
  /** Memory for decoded recent records, over all streams (least recently appended streams give theirs up first). Default 64 MiB. */
  cacheBytes?: number
}

/** What recovery cut from each log on open. */
export interface RecoveryReport {
  path: string
  truncatedBytes: number
}


function ioError(action: string, dir: string, cause: unknown): TransportError {
  const message = cause instanceof Error ? cause.message : String(cause)
  return new TransportError('STREAM_STORE_IO', `File store could not ${action} in ${dir}: ${message}`, { details: { dir }, cause })
}

/**
 * The embedded default store: one append-only, length-framed and
 * checksummed log file per stream in `dir` (`.onepipe/streams`).
 *
 * - **Durable**: a transaction resolves only after its frames are on stable
 *   storage (O_DSYNC writes, or write + fdatasync where O_DSYNC is missing);
 *   records of a batch count only once its COMMIT frame is
 *   on disk, so a crash never leaves half a transaction.
 * - **Group commit**: transactions on one stream that arrive while an
 *   write is in flight are decided together and share the next durable
 *   write, so concurrent appends cost one disk flush per batch, not per append.
 * - **Indexed**: every record's file position and offset is kept in memory
 *   (rebuilt on open), and the newest records are cached decoded; a read
 *   seeks straight to its first record and live wake-ups read from memory.
 * - **Recovery**: on open each log is scanned once and cut after its last
 *   valid COMMIT (torn or corrupt tail); creations and resets go through a
 *   temp file + fsync + rename, so they are atomic too.
 * - One process per directory (a `LOCK` file naming the holder; see `lockDirectory`).
 *
 * @example
 * ```ts
 * const store = await FileStreamStore.open({ dir: '.onepipe/streams' })
 * const server = new UnbrokenServer({ store })
 * ```
 */
export class FileStreamStore implements StreamStore {
  readonly kind = 'file'
  readonly dir: string
  readonly #logs = new Map<string, StreamLog>()
  readonly #watchers = new PathWatchers()
  readonly #queues = new TransactionQueues(
    (path, decide) => this.#persist(path, decide),
    (path) => this.#watchers.notify(path),
  )
  #ready: Promise<void> | undefined
  readonly #budget: CacheBudget
  #closed = false
  #lock: DirLock | undefined
  #recovered: RecoveryReport[] = []

  constructor(options: FileStoreOptions = {}) {
    this.dir = resolve(options.dir ?? '.onepipe/streams')
    this.#budget = new CacheBudget(options.cacheBytes ?? 64 * 1024 * 1024)
  }

  /**
   * Creates a store and opens (recovers) its directory.
   *
   * @example
   * ```ts
   * const store = await FileStreamStore.open({ dir: '/var/lib/onepipe/streams' })
   * ```
   */
  static async open(options: FileStoreOptions = {}): Promise<FileStreamStore> {
    const store = new FileStreamStore(options)
    await store.ready()
    return store
  }

  /** Opens the directory (once): takes the lock and recovers every log. */
  ready(): Promise<void> {
    this.#ready ??= this.#open()
    return this.#ready
  }

  /** Logs whose torn or uncommitted tail was cut when the store opened. */
  get recovered(): readonly RecoveryReport[] {
    return this.#recovered
  }

  async #open(): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    this.#lock = await lockDirectory(this.dir, { code: 'STREAMS_DIR_LOCKED', what: 'streams directory', hint: 'Give each streams server its own --dir, or use the Redis or PostgreSQL store to share streams between processes.' })
    for (const name of await readdir(this.dir)) {
      if (name.endsWith(TMP_SUFFIX)) {
        // A creation or reset that never reached its rename: never acknowledged.
        await unlink(join(this.dir, name))
        continue
      }
      if (!name.endsWith(LOG_SUFFIX)) continue
      const opened = await StreamLog.recover(this.dir, name, this.#budget)
      if (!opened) {
        // No header or no commit: not a log we wrote; keep it aside for inspection.
        await rename(join(this.dir, name), join(this.dir, `${name}.corrupt`))
        continue
      }
      if (opened.truncated > 0) this.#recovered.push({ path: opened.log.path, truncatedBytes: opened.truncated })
      this.#logs.set(opened.log.path, opened.log)
    }
  }

  async head(path: string): Promise<StreamMeta | undefined> {
    await this.ready()
    return this.#logs.get(path)?.meta
  }

  async transact<R>(path: string, plan: StreamPlan<R>): Promise<TransactResult<R>> {
    await this.ready()
    if (this.#closed) throw new OnePipeError('STREAM_STORE_CLOSED', 'The file store was closed.', { status: 503, retryable: true })
    logFileName(path)
    return this.#queues.transact(path, plan)
  }

  /** Persists one decided batch: appends to the open log, or replaces/removes the file. */
  async #persist(path: string, decide: (current: StreamMeta | undefined) => Batch): Promise<Batch> {
    const log = this.#logs.get(path)
    const batch = decide(log?.meta)
    const file = logFileName(path)
    try {
      if (batch.kind === 'append' && log && batch.meta) {
        await log.commit(batch.records, batch.meta)
      } else if (batch.kind === 'create' && batch.meta) {
        this.#logs.set(path, await StreamLog.create(this.dir, file, path, batch.start, batch.records, batch.meta, this.#budget))
        // Reads still running on the old handle finish first (FileHandle.close waits for them).
        await log?.close()
      } else if (batch.kind === 'delete') {
        await unlink(join(this.dir, file))
        await syncDir(this.dir)
        this.#logs.delete(path)
        await log?.close()
      }
    } catch (err) {
      throw ioError(batch.kind === 'append' ? 'append' : `${batch.kind} a stream`, this.dir, err)
    }
    return batch
  }

  async read(path: string, options: ReadOptions): Promise<ReadResult> {
    await this.ready()
    const log = this.#logs.get(path)
    if (!log) return { meta: undefined, records: [] }
    const meta = log.meta
    return { meta, records: await log.read(options) }
  }

  watch(path: string, listener: () => void): () => void {
    return this.#watchers.add(path, listener)
  }

  async expired(now: number, limit: number): Promise<string[]> {
    await this.ready()
    const out: string[] = []
    for (const [path, log] of this.#logs) {
      if (out.length >= limit) break
      const exp = log.meta.expiresAt
      if (exp !== undefined && exp <= now) out.push(path)
    }
    return out
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (!this.#ready) return
    await this.#ready.catch(() => undefined)
    await this.#queues.idle()
    for (const log of this.#logs.values()) await log.close()
    this.#logs.clear()
    this.#watchers.clear()
    await this.#lock?.release()
  }
}
