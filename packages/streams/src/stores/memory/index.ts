import {
  InvalidOffsetError,
  advanceOffset,
  decodeOffset,
  type ReadOptions,
  type ReadResult,
  type StoredRecord,
  type StreamMeta,
  type StreamPlan,
  type StreamStore,
  type TransactResult,
} from '../types.js'
import { PathWatchers } from '../watchers.js'

interface MemoryStream {
  meta: StreamMeta
  /** Record count of the log's start (a fork's log starts at its branch point). */
  baseRecords: number
  records: StoredRecord[]
}

/**
 * Keeps streams in process memory. Nothing survives a restart; use it for
 * tests and throwaway dev servers. Transactions run synchronously, so they
 * are trivially atomic within the process.
 *
 * @example
 * ```ts
 * const server = new UnbrokenServer({ store: new MemoryStreamStore() })
 * ```
 */
export class MemoryStreamStore implements StreamStore {
  readonly kind = 'memory'
  readonly #streams = new Map<string, MemoryStream>()
  readonly #watchers = new PathWatchers()

  head(path: string): Promise<StreamMeta | undefined> {
    return Promise.resolve(this.#streams.get(path)?.meta)
  }

  transact<R>(path: string, plan: StreamPlan<R>): Promise<TransactResult<R>> {
    // The executor runs synchronously, so the whole transaction is one
    // uninterrupted step; a throwing plan becomes a rejection.
    return new Promise((resolve) => resolve(this.#apply(path, plan)))
  }

  #apply<R>(path: string, plan: StreamPlan<R>): TransactResult<R> {
    let stream = this.#streams.get(path)
    const change = plan(stream?.meta)
    if (change.op === 'keep') return { result: change.result, meta: stream?.meta, appended: [] }
    if (change.op === 'delete') {
      if (stream) {
        this.#streams.delete(path)
        this.#notify(path)
      }
      return { result: change.result, meta: undefined, appended: [] }
    }
    if (!stream || change.reset) {
      const base = decodeOffset(change.meta.nextOffset)
      if (!base) throw new InvalidOffsetError(change.meta.nextOffset, 'it is not a well-formed offset')
      stream = { meta: { ...change.meta, version: 0 }, baseRecords: base.records, records: [] }
      this.#streams.set(path, stream)
    }
    let tail = stream.meta.nextOffset
    const appended: { offset: string; next: string }[] = []
    for (const rec of change.append ?? []) {
      const next = advanceOffset(tail, rec.data.byteLength)
      stream.records.push({ offset: tail, next, data: rec.data, count: rec.count })
      appended.push({ offset: tail, next })
      tail = next
    }
    stream.meta = { ...change.meta, nextOffset: tail, version: stream.meta.version + 1 }
    this.#notify(path)
    return { result: change.result, meta: stream.meta, appended }
  }

  read(path: string, options: ReadOptions): Promise<ReadResult> {
    const stream = this.#streams.get(path)
    if (!stream) return Promise.resolve({ meta: undefined, records: [] })
    const { meta, records } = stream
    if (options.from === meta.nextOffset) return Promise.resolve({ meta, records: [] })
    const from = decodeOffset(options.from)
    const index = from ? from.records - stream.baseRecords : -1
    if (index < 0 || index >= records.length || records[index]?.offset !== options.from) {
      return Promise.reject(new InvalidOffsetError(options.from))
    }
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY
    const maxRecords = options.maxRecords ?? Number.POSITIVE_INFINITY
    const out: StoredRecord[] = []
    let bytes = 0
    for (let i = index; i < records.length && out.length < maxRecords; i++) {
      const rec = records[i] as StoredRecord
      if (options.until !== undefined && rec.offset >= options.until) break
      if (out.length > 0 && bytes + rec.data.byteLength > maxBytes) break
      out.push(rec)
      bytes += rec.data.byteLength
    }
    return Promise.resolve({ meta, records: out })
  }

  watch(path: string, listener: () => void): () => void {
    return this.#watchers.add(path, listener)
  }

  expired(now: number, limit: number): Promise<string[]> {
    const out: string[] = []
    for (const [path, s] of this.#streams) {
      if (out.length >= limit) break
      if (s.meta.expiresAt !== undefined && s.meta.expiresAt <= now) out.push(path)
    }
    return Promise.resolve(out)
  }

  close(): Promise<void> {
    this.#watchers.clear()
    return Promise.resolve()
  }

  #notify(path: string): void {
    this.#watchers.notify(path)
  }
}
