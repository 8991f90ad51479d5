import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { ConfigError, OnePipeError, TransportError } from '@onepipe/core'
import {
  advanceOffset,
  type ReadOptions,
  type ReadResult,
  type StreamChange,
  type StreamMeta,
  type StreamPlan,
  type StreamStore,
  type TransactResult,
} from '../types.js'
import { PathWatchers } from '../watchers.js'
import { StreamLog, syncDir, type BatchPut } from './log.js'
import { LOG_SUFFIX, TMP_SUFFIX, logFileName } from './names.js'

/** Options of {@link FileStreamStore}. */
export interface FileStoreOptions {
  /** Directory of the stream logs. Default `.onepipe/streams`. */
  dir?: string
}

interface Pending {
  plan: StreamPlan<unknown>
  resolve: (r: TransactResult<unknown>) => void
  reject: (err: unknown) => void
}

/** Per-path state: the open log (if the stream exists) and its transaction queue. */
interface Slot {
  log: StreamLog | undefined
  queue: Pending[]
  draining: Promise<void> | undefined
}

interface Decided {
  item: Pending
  change: StreamChange<unknown>
  result: TransactResult<unknown>
}

/** What recovery cut from each log on open. */
export interface RecoveryReport {
  path: string
  truncatedBytes: number
}

const LOCK = 'LOCK'

function ioError(action: string, dir: string, cause: unknown): TransportError {
  const message = cause instanceof Error ? cause.message : String(cause)
  return new TransportError('STREAM_STORE_IO', `File store could not ${action} in ${dir}: ${message}`, { details: { dir }, cause })
}

/**
 * The embedded default store: one append-only, length-framed and
 * checksummed log file per stream in `dir` (`.onepipe/streams`).
 *
 * - **Durable**: a transaction resolves only after its frames are written
 *   and fdatasync'd; records of a batch count only once its COMMIT frame is
 *   on disk, so a crash never leaves half a transaction.
 * - **Group commit**: transactions on one stream that arrive while an
 *   fsync is in flight are decided together and share the next write and
 *   fsync, so concurrent appends cost one fsync per batch, not per append.
 * - **Indexed**: every record's file position and offset is kept in memory
 *   (rebuilt on open), and the newest records are cached decoded; a read
 *   seeks straight to its first record and live wake-ups read from memory.
 * - **Recovery**: on open each log is scanned once and cut after its last
 *   valid COMMIT (torn or corrupt tail); creations and resets go through a
 *   temp file + fsync + rename, so they are atomic too.
 * - One process per directory (a `LOCK` file with the owner's pid).
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
  readonly #slots = new Map<string, Slot>()
  readonly #watchers = new PathWatchers()
  #ready: Promise<void> | undefined
  #closed = false
  #locked = false
  #recovered: RecoveryReport[] = []

  constructor(options: FileStoreOptions = {}) {
    this.dir = resolve(options.dir ?? '.onepipe/streams')
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
    await this.#lock()
    for (const name of await readdir(this.dir)) {
      if (name.endsWith(TMP_SUFFIX)) {
        // A creation or reset that never reached its rename: never acknowledged.
        await unlink(join(this.dir, name))
        continue
      }
      if (!name.endsWith(LOG_SUFFIX)) continue
      const opened = await StreamLog.recover(this.dir, name)
      if (!opened) {
        // No header or no commit: not a log we wrote; keep it aside for inspection.
        await rename(join(this.dir, name), join(this.dir, `${name}.corrupt`))
        continue
      }
      if (opened.truncated > 0) this.#recovered.push({ path: opened.log.path, truncatedBytes: opened.truncated })
      this.#slots.set(opened.log.path, { log: opened.log, queue: [], draining: undefined })
    }
  }

  async #lock(): Promise<void> {
    const file = join(this.dir, LOCK)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(file, 'wx')
        await fh.writeFile(String(process.pid))
        await fh.close()
        this.#locked = true
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim())
      if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
        throw new ConfigError('STREAMS_DIR_LOCKED', `Streams directory ${this.dir} is in use by process ${owner}; give each server its own --dir.`, { dir: this.dir, pid: owner })
      }
      // The owner died (e.g. kill -9): its lock is stale.
      await unlink(file).catch(() => undefined)
    }
    throw new ConfigError('STREAMS_DIR_LOCKED', `Could not lock streams directory ${this.dir}.`, { dir: this.dir })
  }

  async head(path: string): Promise<StreamMeta | undefined> {
    await this.ready()
    return this.#slots.get(path)?.log?.meta
  }

  async transact<R>(path: string, plan: StreamPlan<R>): Promise<TransactResult<R>> {
    await this.ready()
    if (this.#closed) throw new OnePipeError('STREAM_STORE_CLOSED', 'The file store was closed.', { status: 503, retryable: true })
    const file = logFileName(path)
    let slot = this.#slots.get(path)
    if (!slot) {
      slot = { log: undefined, queue: [], draining: undefined }
      this.#slots.set(path, slot)
    }
    const s = slot
    return new Promise<TransactResult<R>>((resolve, reject) => {
      s.queue.push({ plan, resolve: resolve as (r: TransactResult<unknown>) => void, reject })
      this.#kick(path, file, s)
    })
  }

  /** Starts draining a slot's queue unless it already is. */
  #kick(path: string, file: string, slot: Slot): void {
    if (slot.draining) return
    slot.draining = this.#drain(path, file, slot)
      .catch((err: unknown) => {
        for (const item of slot.queue.splice(0)) item.reject(err)
      })
      .finally(() => {
        slot.draining = undefined
        if (slot.queue.length > 0) this.#kick(path, file, slot)
        else if (!slot.log && this.#slots.get(path) === slot) this.#slots.delete(path)
      })
  }

  /**
   * Runs queued transactions: plans are decided in order against the
   * committed meta plus the batch so far; every put/keep decided while the
   * previous fsync ran goes into ONE write + fsync. Creation, reset and
   * delete replace the file and are applied alone.
   */
  async #drain(path: string, file: string, slot: Slot): Promise<void> {
    while (slot.queue.length > 0) {
      const batch: Decided[] = []
      let structural: Decided | undefined
      let working = slot.log?.meta
      while (slot.queue.length > 0) {
        const item = slot.queue[0] as Pending
        let change: StreamChange<unknown>
        try {
          change = item.plan(working)
        } catch (err) {
          slot.queue.shift()
          item.reject(err)
          continue
        }
        const replaces = change.op === 'delete' ? working !== undefined : change.op === 'put' && (working === undefined || change.reset === true)
        if (replaces) {
          // Plans are pure, so one left in the queue is simply decided again next round.
          if (batch.length > 0) break
          slot.queue.shift()
          structural = { item, change, result: { result: change.result, meta: undefined, appended: [] } }
          break
        }
        slot.queue.shift()
        const appended: { offset: string; next: string }[] = []
        if (change.op === 'put' && working) {
          let tail = working.nextOffset
          for (const rec of change.append ?? []) {
            const next = advanceOffset(tail, rec.data.byteLength)
            appended.push({ offset: tail, next })
            tail = next
          }
          working = { ...change.meta, nextOffset: tail, version: working.version + 1 }
        }
        batch.push({ item, change, result: { result: change.result, meta: working, appended } })
      }
      if (structural) await this.#replace(path, file, slot, structural)
      else await this.#commit(path, slot, batch)
    }
  }

  async #commit(path: string, slot: Slot, batch: Decided[]): Promise<void> {
    const puts: BatchPut[] = []
    for (const d of batch) {
      if (d.change.op === 'put') puts.push({ meta: d.change.meta, append: d.change.append ?? [] })
    }
    if (puts.length > 0 && slot.log) {
      try {
        await slot.log.commit(puts)
      } catch (err) {
        const failure = ioError('append', this.dir, err)
        for (const d of batch) d.item.reject(failure)
        return
      }
    }
    for (const d of batch) d.item.resolve(d.result)
    if (puts.length > 0) this.#notify(path)
  }

  /** Creation, reset or delete: the file itself is replaced or removed. */
  async #replace(path: string, file: string, slot: Slot, d: Decided): Promise<void> {
    const old = slot.log
    try {
      if (d.change.op === 'delete') {
        await unlink(join(this.dir, file))
        await syncDir(this.dir)
        slot.log = undefined
      } else if (d.change.op === 'put') {
        const { log, appended } = await StreamLog.create(this.dir, file, path, d.change.meta, d.change.append ?? [])
        slot.log = log
        d.result = { result: d.change.result, meta: log.meta, appended }
      }
    } catch (err) {
      d.item.reject(ioError(d.change.op === 'delete' ? 'delete a stream' : 'create a stream', this.dir, err))
      return
    }
    d.item.resolve(d.result)
    // Reads still running on the old handle finish first (FileHandle.close waits for them).
    await old?.close()
    this.#notify(path)
  }

  async read(path: string, options: ReadOptions): Promise<ReadResult> {
    await this.ready()
    const log = this.#slots.get(path)?.log
    if (!log) return { meta: undefined, records: [] }
    const meta = log.meta
    return { meta, records: await log.read(options) }
  }

  watch(path: string, listener: () => void): () => void {
    return this.#watchers.add(path, listener)
  }

  #notify(path: string): void {
    this.#watchers.notify(path)
  }

  async expired(now: number, limit: number): Promise<string[]> {
    await this.ready()
    const out: string[] = []
    for (const [path, slot] of this.#slots) {
      if (out.length >= limit) break
      const exp = slot.log?.meta.expiresAt
      if (exp !== undefined && exp <= now) out.push(path)
    }
    return out
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (!this.#ready) return
    await this.#ready.catch(() => undefined)
    for (;;) {
      const running = [...this.#slots.values()].map((s) => s.draining).filter((p) => p !== undefined)
      if (running.length === 0) break
      await Promise.all(running)
    }
    for (const slot of this.#slots.values()) await slot.log?.close()
    this.#slots.clear()
    this.#watchers.clear()
    if (this.#locked) await unlink(join(this.dir, LOCK))
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
