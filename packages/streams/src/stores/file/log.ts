import { constants } from 'node:fs'
import { open, rename, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import {
  InvalidOffsetError,
  decodeOffset,
  encodeOffset,
  type ReadOptions,
  type StoredRecord,
  type StreamMeta,
} from '../types.js'
import { FRAME_HEADER, FrameType, dataFrame, dataOf, parseFrame, textFrame } from './frames.js'
import { TMP_SUFFIX } from './names.js'
import { TailCache, type CacheBudget } from './cache.js'
import type { PlacedRecord } from '../batch.js'

/** Growable array of non-negative integers (file positions, byte counts). */
class NumberList {
  #a = new Float64Array(1024)
  length = 0
  push(v: number): void {
    if (this.length === this.#a.length) {
      const b = new Float64Array(this.#a.length * 2)
      b.set(this.#a)
      this.#a = b
    }
    this.#a[this.length++] = v
  }
  at(i: number): number {
    return this.#a[i] as number
  }
}

/** Meta minus what the log itself determines (tail and version): what a COMMIT frame stores. */
function persistedMeta(meta: StreamMeta): string {
  const { nextOffset: _n, version: _v, ...rest } = meta
  return JSON.stringify(rest)
}

const READ_CHUNK = 1 << 20

/**
 * Logs are opened with O_DSYNC where the platform has it: each write then
 * returns only once its data is on stable storage (what fdatasync after it
 * would ensure), in one system call and one thread-pool hop instead of two.
 */
const DSYNC = constants.O_DSYNC as number | undefined
const OPEN_FLAGS = constants.O_RDWR | (DSYNC ?? 0)
const CREATE_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | (DSYNC ?? 0)

/** fsync of a directory, so a created, renamed or removed entry survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/**
 * One stream's log file plus its in-memory state: the committed meta, an
 * index of every record's file position and byte offset (so reads seek
 * straight to a record), and a cache of the newest records. Only committed,
 * fsync'd state is ever visible here; the store batches transactions on
 * top (group commit).
 */
export class StreamLog {
  readonly path: string
  readonly file: string
  #fh: FileHandle
  #meta: StreamMeta
  #metaJson: string
  /** Record count and byte offset of the log's first record (non-zero for forks). */
  readonly #baseRecords: number
  readonly #positions = new NumberList()
  readonly #byteStarts = new NumberList()
  #tailBytes: number
  /** File length up to the end of the last COMMIT. */
  #end: number
  readonly #cache: TailCache

  private constructor(path: string, file: string, fh: FileHandle, meta: StreamMeta, base: { records: number; bytes: number }, end: number, budget: CacheBudget) {
    this.#cache = new TailCache(budget)
    this.path = path
    this.file = file
    this.#fh = fh
    this.#meta = meta
    this.#metaJson = persistedMeta(meta)
    this.#baseRecords = base.records
    this.#tailBytes = base.bytes
    this.#end = end
  }

  get meta(): StreamMeta {
    return this.#meta
  }

  /** Records in the log (not counting a fork's inherited ones). */
  get recordCount(): number {
    return this.#positions.length
  }

  /**
   * Writes a complete new log (header, records, commit) to a temp file,
   * fsyncs it and renames it over `file`: creation and reset are atomic.
   * `meta` is the meta after the records; `base` the offset of the first.
   */
  static async create(dir: string, file: string, path: string, base: string, records: readonly PlacedRecord[], meta: StreamMeta, budget: CacheBudget): Promise<StreamLog> {
    const start = decodeOffset(base)
    if (!start) throw new InvalidOffsetError(base, 'it is not a well-formed offset')
    const tmp = join(dir, file + TMP_SUFFIX)
    const head = textFrame(FrameType.Header, JSON.stringify({ v: 1, path, base }))
    const log = new StreamLog(path, file, undefined as unknown as FileHandle, meta, start, head.byteLength, budget)
    // The first COMMIT always carries the full meta.
    log.#metaJson = ''
    const { buffers, apply } = log.#prepare(records, meta)
    const fh = await open(tmp, CREATE_FLAGS)
    try {
      await writeAll(fh, [head, ...buffers], 0)
      if (!DSYNC) await fh.datasync()
      await rename(tmp, join(dir, file))
    } catch (err) {
      await fh.close()
      await unlink(tmp).catch(() => undefined)
      throw err
    }
    await syncDir(dir)
    log.#fh = fh
    apply()
    return log
  }

  /**
   * Opens an existing log, rebuilding the index by one sequential scan and
   * cutting (and fsyncing) whatever follows the last valid COMMIT: a torn
   * write, a corrupt frame, or data of a batch that never committed.
   */
  static async recover(dir: string, file: string, budget: CacheBudget): Promise<{ log: StreamLog; truncated: number } | undefined> {
    const fh = await open(join(dir, file), OPEN_FLAGS)
    try {
      const size = (await fh.stat()).size
      let buf = Buffer.alloc(0)
      let bufStart = 0
      let filePos = 0
      let log: StreamLog | undefined
      let pending: { pos: number; size: number }[] = []
      let metaJson: string | undefined
      let commits = 0
      let committedEnd = 0
      scan: for (;;) {
        const rel = filePos - bufStart
        const frame = parseFrame(buf, rel)
        if (frame === 'short') {
          if (bufStart + buf.byteLength >= size) break
          const chunk = Buffer.allocUnsafe(Math.max(READ_CHUNK, FRAME_HEADER + (buf.byteLength - rel) * 2))
          const { bytesRead } = await fh.read(chunk, 0, chunk.byteLength, bufStart + buf.byteLength)
          if (bytesRead === 0) break
          buf = Buffer.concat([buf.subarray(rel), chunk.subarray(0, bytesRead)])
          bufStart = filePos
          continue
        }
        if (frame === 'bad') break
        const at = filePos
        filePos = bufStart + frame.end
        switch (frame.type) {
          case FrameType.Header: {
            if (log) break scan
            const h = parseHeader(frame.payload)
            const base = h && decodeOffset(h.base)
            if (!h || !base) break scan
            const placeholder: StreamMeta = { contentType: '', createdAt: 0, nextOffset: h.base, version: 0, closed: false }
            log = new StreamLog(h.path, file, fh, placeholder, base, filePos, budget)
            break
          }
          case FrameType.Data:
            if (!log) break scan
            pending.push({ pos: at, size: frame.payload.byteLength - 4 })
            break
          case FrameType.Commit: {
            if (!log) break scan
            for (const p of pending) log.#index(p.pos, p.size)
            pending = []
            if (frame.payload.byteLength > 0) metaJson = frame.payload.toString('utf8')
            commits++
            committedEnd = filePos
            break
          }
        }
      }
      if (!log || metaJson === undefined) {
        await fh.close()
        return undefined
      }
      const stored = JSON.parse(metaJson) as Omit<StreamMeta, 'nextOffset' | 'version'>
      log.#meta = { ...stored, nextOffset: encodeOffset(log.#baseRecords + log.recordCount, log.#tailBytes), version: commits }
      log.#metaJson = persistedMeta(log.#meta)
      log.#end = committedEnd
      const truncated = size - committedEnd
      if (truncated > 0) {
        await fh.truncate(committedEnd)
        await fh.datasync()
      }
      return { log, truncated }
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  #index(pos: number, size: number): void {
    this.#positions.push(pos)
    this.#byteStarts.push(this.#tailBytes)
    this.#tailBytes += size
  }

  /**
   * Frames for a batch (its records, then ONE commit carrying the final
   * meta), and the function that makes the batch visible once the frames
   * are durable.
   */
  #prepare(records: readonly PlacedRecord[], meta: StreamMeta): { buffers: Uint8Array[]; apply: () => void } {
    const buffers: Uint8Array[] = []
    const positions: number[] = []
    let pos = this.#end
    for (const rec of records) {
      const [h, data] = dataFrame(rec.data, rec.count)
      buffers.push(h, data)
      positions.push(pos)
      pos += h.byteLength + data.byteLength
    }
    const json = persistedMeta(meta)
    const commit = textFrame(FrameType.Commit, json === this.#metaJson ? '' : json)
    buffers.push(commit)
    const end = pos + commit.byteLength
    const apply = () => {
      records.forEach((rec, i) => {
        this.#cache.add(this.#positions.length, rec)
        this.#index(positions[i] as number, rec.data.byteLength)
      })
      this.#end = end
      this.#metaJson = json
      this.#meta = meta
    }
    return { buffers, apply }
  }

  /**
   * Appends a batch with ONE durable write (O_DSYNC, else write +
   * fdatasync), then makes it
   * visible. On failure the file is cut back to the last commit and
   * nothing changes in memory.
   */
  async commit(records: readonly PlacedRecord[], meta: StreamMeta): Promise<void> {
    const { buffers, apply } = this.#prepare(records, meta)
    try {
      await writeAll(this.#fh, buffers, this.#end)
      if (!DSYNC) await this.#fh.datasync()
    } catch (err) {
      await this.#fh.truncate(this.#end).catch(() => undefined)
      throw err
    }
    apply()
  }

  /** Byte size of record `i` (index in this log). */
  #sizeOf(i: number): number {
    return (i + 1 < this.#positions.length ? this.#byteStarts.at(i + 1) : this.#tailBytes) - this.#byteStarts.at(i)
  }

  /** Reads committed records from a record boundary (or the tail), within the bounds of `options`. */
  async read(options: ReadOptions): Promise<StoredRecord[]> {
    const meta = this.#meta
    if (options.from === meta.nextOffset) return []
    const from = decodeOffset(options.from)
    const n = this.#positions.length
    const first = from ? from.records - this.#baseRecords : -1
    if (!from || first < 0 || first >= n || this.#byteStarts.at(first) !== from.bytes) throw new InvalidOffsetError(options.from)
    const until = options.until !== undefined ? decodeOffset(options.until) : undefined
    const stopAt = Math.min(n, until ? until.records - this.#baseRecords : n)
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY
    const maxRecords = options.maxRecords ?? Number.POSITIVE_INFINITY
    let last = first
    let bytes = 0
    while (last < stopAt && last - first < maxRecords) {
      const size = this.#sizeOf(last)
      if (last > first && bytes + size > maxBytes) break
      bytes += size
      last++
    }
    if (last === first) return []
    return this.#cache.get(first, last) ?? this.#readFile(first, last)
  }

  /** Records [first, last) from disk: one positioned read, frames parsed in place. */
  async #readFile(first: number, last: number): Promise<StoredRecord[]> {
    const start = this.#positions.at(first)
    const stop = last < this.#positions.length ? this.#positions.at(last) : this.#end
    const buf = Buffer.allocUnsafe(stop - start)
    const { bytesRead } = await this.#fh.read(buf, 0, buf.byteLength, start)
    if (bytesRead !== buf.byteLength) throw new Error(`Stream log ${this.file} is shorter than its index; it was changed outside OnePipe.`)
    const out: StoredRecord[] = []
    let pos = 0
    let i = first
    while (i < last) {
      const frame = parseFrame(buf, pos)
      if (typeof frame === 'string') throw new Error(`Stream log ${this.file} has a ${frame} frame at byte ${start + pos}; it was changed outside OnePipe.`)
      pos = frame.end
      if (frame.type !== FrameType.Data) continue
      const { count, data } = dataOf(frame.payload)
      const records = this.#baseRecords + i
      out.push({ offset: encodeOffset(records, this.#byteStarts.at(i)), next: encodeOffset(records + 1, this.#byteStarts.at(i) + data.byteLength), data, count })
      i++
    }
    return out
  }

  async close(): Promise<void> {
    this.#cache.release()
    await this.#fh.close()
  }
}

function parseHeader(payload: Buffer): { path: string; base: string } | undefined {
  try {
    const h = JSON.parse(payload.toString('utf8')) as { path?: unknown; base?: unknown }
    return typeof h.path === 'string' && typeof h.base === 'string' ? { path: h.path, base: h.base } : undefined
  } catch {
    return undefined
  }
}

/** Writes every buffer at `position`, looping over short writes. */
async function writeAll(fh: FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
  let pending = buffers
  let pos = position
  while (pending.length > 0) {
    const { bytesWritten } = await fh.writev(pending, pos)
    pos += bytesWritten
    let skip = bytesWritten
    const rest: Uint8Array[] = []
    for (const b of pending) {
      if (skip >= b.byteLength) {
        skip -= b.byteLength
        continue
      }
      rest.push(skip > 0 ? b.subarray(skip) : b)
      skip = 0
    }
    pending = rest
  }
}
