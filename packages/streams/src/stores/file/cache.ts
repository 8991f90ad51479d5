import type { StoredRecord } from '../types.js'

/** Most records / bytes one stream keeps decoded in memory. */
const STREAM_RECORDS = 4096
const STREAM_BYTES = 4 * 1024 * 1024

/**
 * Memory shared by the tail caches of one store: when the total goes over
 * `maxBytes`, the caches of the streams appended to least recently are
 * dropped first (they fall back to positioned reads through the index).
 *
 * @example
 * ```ts
 * const budget = new CacheBudget(64 * 1024 * 1024)
 * const cache = new TailCache(budget)
 * ```
 */
export class CacheBudget {
  readonly maxBytes: number
  #total = 0
  /** Caches in least-recently-grown order (Map keeps insertion order). */
  readonly #lru = new Map<TailCache, true>()

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes
  }

  get totalBytes(): number {
    return this.#total
  }

  /** Accounts `delta` bytes to `cache` (negative = released) and evicts others while over budget. */
  charge(cache: TailCache, delta: number): void {
    this.#total += delta
    if (delta <= 0) return
    this.#lru.delete(cache)
    this.#lru.set(cache, true)
    for (const victim of this.#lru.keys()) {
      if (this.#total <= this.maxBytes) return
      if (victim === cache) continue
      this.#lru.delete(victim)
      victim.clear()
    }
    if (this.#total > this.maxBytes) cache.trim()
  }

  forget(cache: TailCache): void {
    this.#lru.delete(cache)
  }
}

/**
 * The newest records of one stream, decoded, as one contiguous window
 * `[start, start + length)` of record numbers (log-relative), so live
 * readers and tail reads never touch the file.
 */
export class TailCache {
  readonly #budget: CacheBudget
  #records: StoredRecord[] = []
  #start = 0
  #bytes = 0

  constructor(budget: CacheBudget) {
    this.#budget = budget
  }

  /** Adds record number `index`; a gap (after a clear) restarts the window there. */
  add(index: number, rec: StoredRecord): void {
    if (this.#records.length === 0 || index !== this.#start + this.#records.length) {
      this.clear()
      this.#start = index
    }
    this.#records.push(rec)
    this.#bytes += rec.data.byteLength
    this.#budget.charge(this, rec.data.byteLength)
    if (this.#records.length > STREAM_RECORDS || this.#bytes > STREAM_BYTES) this.trim()
  }

  /** Records `[first, last)` if all of them are cached. */
  get(first: number, last: number): StoredRecord[] | undefined {
    if (this.#records.length === 0 || first < this.#start || last > this.#start + this.#records.length) return undefined
    return this.#records.slice(first - this.#start, last - this.#start)
  }

  /** Drops the older half (amortized O(1) per append). */
  trim(): void {
    const drop = Math.max(1, this.#records.length >> 1)
    let freed = 0
    for (let i = 0; i < drop; i++) freed += (this.#records[i] as StoredRecord).data.byteLength
    this.#records = this.#records.slice(drop)
    this.#start += drop
    this.#bytes -= freed
    this.#budget.charge(this, -freed)
  }

  clear(): void {
    if (this.#bytes > 0) this.#budget.charge(this, -this.#bytes)
    this.#records = []
    this.#bytes = 0
  }

  /** Releases everything (stream closed, deleted or replaced). */
  release(): void {
    this.clear()
    this.#budget.forget(this)
  }
}
