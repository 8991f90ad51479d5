import {
  InvalidOffsetError,
  ProducerFencedError,
  ProducerSequenceError,
  StreamBadRequestError,
  StreamClosedError,
  StreamConflictError,
  StreamGoneError,
  StreamNotFoundError,
  ZERO_OFFSET,
  type AppendRecord,
  type StoredRecord,
  type StreamMeta,
  type StreamStore,
} from '../stores/types.js'
import { bodyToRecords, isJsonType, mediaType, recordPrefix } from './records.js'

/**
 * The protocol layer shared by every store: idempotent producers, Stream-Seq,
 * closing, TTL/expiry, forks with reference counts, JSON mode. Each rule runs
 * inside one `store.transact` plan, so it is atomic on every backend, and a
 * store never needs to know any of it.
 */

/** Content type of streams created without one. @example DEFAULT_CONTENT_TYPE // 'application/octet-stream' */
export const DEFAULT_CONTENT_TYPE = 'application/octet-stream'

/** PUT: create (or idempotently re-create) a stream. */
export interface CreateRequest {
  contentType?: string
  ttlSeconds?: number
  expiresAt?: number
  closed: boolean
  body: Uint8Array
  fork?: { source: string; offset?: string; subOffset?: number }
}

/** Idempotent producer headers of one append. */
export interface ProducerTuple {
  id: string
  epoch: number
  seq: number
}

/** POST: append and/or close. */
export interface AppendRequest {
  contentType?: string
  body: Uint8Array
  close: boolean
  seq?: string
  producer?: ProducerTuple
}

export interface AppendOutcome {
  meta: StreamMeta
  nextOffset: string
  /** A producer retry that was already applied: nothing was written (204). */
  duplicate: boolean
  /** Producer epoch/seq to echo (highest accepted for duplicates). */
  producer?: { epoch: number; seq: number }
}

/** Limits of one catch-up read. */
export interface ReadLimits {
  maxBytes: number
  maxRecords?: number
}

export interface ReadOutcome {
  meta: StreamMeta
  records: StoredRecord[]
  /** Offset to continue from. */
  next: string
  /** The read reached the tail. */
  upToDate: boolean
}

type Liveness = 'absent' | 'gone' | 'live'

/**
 * The protocol over a store, without HTTP: what the server runs for every
 * request, usable directly by in-process callers.
 *
 * @example
 * ```ts
 * const engine = new StreamEngine(new MemoryStreamStore())
 * await engine.create('flows/orders', { contentType: 'application/json', closed: false, body: new Uint8Array() })
 * const { nextOffset } = await engine.append('flows/orders', { contentType: 'application/json', body: Buffer.from('{"id":1}'), close: false })
 * const { records } = await engine.read('flows/orders', '-1', { maxBytes: 1 << 20 })
 * ```
 */
export class StreamEngine {
  readonly store: StreamStore
  readonly #now: () => number

  constructor(store: StreamStore, options: { now?: () => number } = {}) {
    this.store = store
    this.#now = options.now ?? Date.now
  }

  /** Whether `meta` is usable now: expired streams with live forks count as gone. */
  #liveness(meta: StreamMeta | undefined, now: number): Liveness {
    if (!meta) return 'absent'
    if (meta.deleted) return 'gone'
    if (meta.expiresAt !== undefined && meta.expiresAt <= now) return (meta.forkRefs ?? 0) > 0 ? 'gone' : 'absent'
    return 'live'
  }

  #require(path: string, meta: StreamMeta | undefined, now: number): StreamMeta {
    const l = this.#liveness(meta, now)
    if (l === 'absent') throw new StreamNotFoundError(path)
    if (l === 'gone') throw new StreamGoneError(path)
    return meta as StreamMeta
  }

  /** The sliding expiry after an access, or the unchanged one. */
  #touched(meta: StreamMeta, now: number): number | undefined {
    if (meta.ttlSeconds === undefined) return meta.expiresAt
    return now + meta.ttlSeconds * 1000
  }

  // ───────────────────────────── create ─────────────────────────────

  async create(path: string, req: CreateRequest): Promise<{ created: boolean; meta: StreamMeta }> {
    if (req.ttlSeconds !== undefined && req.expiresAt !== undefined) {
      throw new StreamBadRequestError('STREAM_TTL_CONFLICT', 'Send either Stream-TTL or Stream-Expires-At, not both.')
    }
    if (req.fork) return this.#createFork(path, req, req.fork)
    const contentType = req.contentType ?? DEFAULT_CONTENT_TYPE
    const records = bodyToRecords(req.body, isJsonType(contentType))
    const now = this.#now()
    const fresh: StreamMeta = {
      contentType,
      createdAt: now,
      nextOffset: ZERO_OFFSET,
      version: 0,
      closed: req.closed,
      ...(req.ttlSeconds !== undefined ? { ttlSeconds: req.ttlSeconds, expiresAt: now + req.ttlSeconds * 1000 } : {}),
      ...(req.expiresAt !== undefined ? { expiresAt: req.expiresAt } : {}),
    }
    const r = await this.store.transact(path, (cur) => {
      const l = this.#liveness(cur, now)
      if (l === 'gone') throw new StreamConflictError('STREAM_GONE', `Stream "${path}" was deleted but is still read by its forks; use another path.`)
      if (l === 'live' && cur) {
        this.#sameConfig(path, cur, { contentType, ttlSeconds: req.ttlSeconds, expiresAt: req.expiresAt, closed: req.closed })
        return { op: 'keep' as const, result: { created: false, replacedFork: undefined as string | undefined } }
      }
      return { op: 'put' as const, meta: fresh, append: records, reset: cur !== undefined, result: { created: true, replacedFork: cur?.fork?.source } }
    })
    if (r.result.replacedFork) await this.#release(r.result.replacedFork)
    return { created: r.result.created, meta: r.meta as StreamMeta }
  }

  #sameConfig(
    path: string,
    cur: StreamMeta,
    want: { contentType: string; ttlSeconds: number | undefined; expiresAt: number | undefined; closed: boolean },
  ): void {
    const diffs: string[] = []
    if (mediaType(cur.contentType) !== mediaType(want.contentType)) diffs.push(`content type ${cur.contentType}`)
    if (cur.ttlSeconds !== want.ttlSeconds) diffs.push(`Stream-TTL ${cur.ttlSeconds ?? 'none'}`)
    if (want.ttlSeconds === undefined && cur.ttlSeconds === undefined && cur.expiresAt !== want.expiresAt) diffs.push('Stream-Expires-At')
    if (cur.closed !== want.closed) diffs.push(cur.closed ? 'closed' : 'open')
    if (diffs.length > 0) {
      throw new StreamConflictError('STREAM_EXISTS', `Stream "${path}" already exists with a different configuration (${diffs.join(', ')}).`, { path })
    }
  }

  async #createFork(path: string, req: CreateRequest, fork: NonNullable<CreateRequest['fork']>): Promise<{ created: boolean; meta: StreamMeta }> {
    const now = this.#now()
    const existing = await this.store.head(path)
    if (existing && this.#liveness(existing, now) === 'live') {
      this.#sameFork(path, existing, req, fork)
      return { created: false, meta: existing }
    }
    // Take a reference on the source first, so it cannot be collected while
    // the fork is being created; given back if creation fails.
    const src = await this.store.transact(fork.source, (cur) => {
      const l = this.#liveness(cur, now)
      if (l === 'absent') throw new StreamNotFoundError(fork.source)
      if (l === 'gone') throw new StreamConflictError('STREAM_GONE', `Cannot fork "${fork.source}": it was deleted.`)
      const meta = cur as StreamMeta
      if (req.contentType !== undefined && mediaType(req.contentType) !== mediaType(meta.contentType)) {
        throw new StreamConflictError('STREAM_CONTENT_TYPE_MISMATCH', `Fork content type ${req.contentType} differs from the source's ${meta.contentType}.`)
      }
      const at = fork.offset ?? meta.nextOffset
      if (at > meta.nextOffset) throw new InvalidOffsetError(at, 'it is beyond the source stream tail')
      return { op: 'put' as const, meta: { ...meta, forkRefs: (meta.forkRefs ?? 0) + 1 }, result: { meta, at } }
    })
    try {
      const { meta: source, at } = src.result
      const json = isJsonType(source.contentType)
      const prefix: AppendRecord[] = []
      if (fork.subOffset !== undefined && fork.subOffset > 0) {
        const rec = await this.#recordAt(fork.source, at, source)
        prefix.push(recordPrefix(rec, fork.subOffset, json))
      } else if (at !== source.nextOffset && at !== ZERO_OFFSET) {
        // Validate that the branch point is a real boundary of the source.
        await this.#recordAt(fork.source, at, source)
      }
      const body = bodyToRecords(req.body, json)
      const ttlSeconds = req.ttlSeconds ?? (req.expiresAt === undefined ? source.ttlSeconds : undefined)
      const expiresAt =
        req.expiresAt ?? (ttlSeconds !== undefined ? now + ttlSeconds * 1000 : req.ttlSeconds === undefined ? source.expiresAt : undefined)
      const meta: StreamMeta = {
        contentType: req.contentType ?? source.contentType,
        createdAt: now,
        nextOffset: at,
        version: 0,
        closed: req.closed,
        fork: { source: fork.source, offset: at },
        ...(fork.subOffset ? { forkSubOffset: fork.subOffset } : {}),
        ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
        ...(expiresAt !== undefined ? { expiresAt } : {}),
      }
      const r = await this.store.transact(path, (cur) => {
        const l = this.#liveness(cur, now)
        if (l === 'gone') throw new StreamConflictError('STREAM_GONE', `Stream "${path}" was deleted but is still read by its forks; use another path.`)
        if (l === 'live' && cur) {
          this.#sameFork(path, cur, req, fork)
          return { op: 'keep' as const, result: { created: false, replacedFork: undefined as string | undefined } }
        }
        return { op: 'put' as const, meta, append: [...prefix, ...body], reset: cur !== undefined, result: { created: true, replacedFork: cur?.fork?.source } }
      })
      if (!r.result.created) await this.#release(fork.source)
      if (r.result.replacedFork) await this.#release(r.result.replacedFork)
      return { created: r.result.created, meta: r.meta as StreamMeta }
    } catch (err) {
      await this.#release(fork.source)
      throw err
    }
  }

  #sameFork(path: string, cur: StreamMeta, req: CreateRequest, fork: NonNullable<CreateRequest['fork']>): void {
    const same =
      cur.fork?.source === fork.source &&
      (fork.offset === undefined || cur.fork.offset === fork.offset) &&
      (cur.forkSubOffset ?? 0) === (fork.subOffset ?? 0) &&
      (req.contentType === undefined || mediaType(req.contentType) === mediaType(cur.contentType)) &&
      cur.closed === req.closed
    if (!same) throw new StreamConflictError('STREAM_EXISTS', `Stream "${path}" already exists with a different configuration.`, { path })
  }

  /** The record starting exactly at `offset`, following fork chains. */
  async #recordAt(path: string, offset: string, meta: StreamMeta): Promise<StoredRecord> {
    if (offset >= meta.nextOffset) throw new InvalidOffsetError(offset, 'no append starts there')
    const { records } = await this.#readChain(path, meta, offset, undefined, { maxBytes: 0, maxRecords: 1 })
    const rec = records[0]
    if (!rec || rec.offset !== offset) throw new InvalidOffsetError(offset, 'no append starts there')
    return rec
  }

  // ───────────────────────────── append / close ─────────────────────────────

  async append(path: string, req: AppendRequest): Promise<AppendOutcome> {
    const now = this.#now()
    const closeOnly = req.close && req.body.byteLength === 0
    if (!closeOnly && req.body.byteLength === 0) {
      throw new StreamBadRequestError('STREAM_EMPTY_BODY', 'POST needs a non-empty body (or Stream-Closed: true to close the stream).')
    }
    // JSON parsing happens outside the plan: plans must stay cheap and pure.
    let records: AppendRecord[] | undefined
    let recordsFor: string | undefined
    const r = await this.store.transact(path, (cur) => {
      const meta = this.#require(path, cur, now)
      const p = req.producer
      const prev = p ? meta.producers?.[p.id] : undefined
      if (p && prev) {
        if (p.epoch < prev.epoch) throw new ProducerFencedError(p.id, prev.epoch)
        if (p.epoch === prev.epoch && p.seq <= prev.seq) {
          return { op: 'keep' as const, result: { duplicate: true, producer: { epoch: prev.epoch, seq: prev.seq } } }
        }
      }
      if (meta.closed) {
        if (closeOnly && !p) return { op: 'keep' as const, result: { duplicate: true, producer: undefined } }
        throw new StreamClosedError(path, meta.nextOffset)
      }
      if (!closeOnly && req.contentType !== undefined && mediaType(req.contentType) !== mediaType(meta.contentType)) {
        throw new StreamConflictError('STREAM_CONTENT_TYPE_MISMATCH', `Content-Type ${req.contentType} does not match the stream's ${meta.contentType}.`)
      }
      if (p) {
        if (prev && p.epoch > prev.epoch && p.seq !== 0) {
          throw new StreamBadRequestError('PRODUCER_EPOCH_SEQ', `A new Producer-Epoch must start at Producer-Seq 0, got ${p.seq}.`)
        }
        const expected = prev && p.epoch === prev.epoch ? prev.seq + 1 : 0
        if (p.seq !== expected) throw new ProducerSequenceError(p.id, expected, p.seq)
      }
      if (req.seq !== undefined && meta.lastSeq !== undefined && req.seq <= meta.lastSeq) {
        throw new StreamConflictError('STREAM_SEQ_CONFLICT', `Stream-Seq "${req.seq}" must sort after the last one, "${meta.lastSeq}".`, {
          lastSeq: meta.lastSeq,
        })
      }
      if (!closeOnly && recordsFor !== meta.contentType) {
        records = bodyToRecords(req.body, isJsonType(meta.contentType))
        recordsFor = meta.contentType
        if (records.length === 0) throw new StreamBadRequestError('STREAM_EMPTY_BODY', 'An empty JSON array appends nothing; send at least one value.')
      }
      const append = closeOnly ? [] : (records as AppendRecord[])
      const next: StreamMeta = { ...meta }
      const expiresAt = this.#touched(meta, now)
      if (expiresAt !== undefined) next.expiresAt = expiresAt
      if (req.seq !== undefined) next.lastSeq = req.seq
      if (req.close) {
        next.closed = true
        if (p) next.closedBy = { id: p.id, epoch: p.epoch, seq: p.seq }
      }
      if (p) {
        // The offset is filled in below, once the store assigned it.
        next.producers = { ...meta.producers, [p.id]: { epoch: p.epoch, seq: p.seq, offset: meta.nextOffset } }
      }
      return { op: 'put' as const, meta: next, append, result: { duplicate: false, producer: p ? { epoch: p.epoch, seq: p.seq } : undefined } }
    })
    const meta = r.meta as StreamMeta
    const last = r.appended[r.appended.length - 1]
    return {
      meta,
      nextOffset: r.result.duplicate ? meta.nextOffset : (last?.next ?? meta.nextOffset),
      duplicate: r.result.duplicate,
      ...(r.result.producer ? { producer: r.result.producer } : {}),
    }
  }

  // ───────────────────────────── delete / expiry ─────────────────────────────

  async delete(path: string): Promise<void> {
    const now = this.#now()
    const r = await this.store.transact(path, (cur) => {
      const meta = this.#require(path, cur, now)
      if ((meta.forkRefs ?? 0) > 0) {
        return { op: 'put' as const, meta: { ...meta, deleted: true }, result: undefined as string | undefined }
      }
      return { op: 'delete' as const, result: meta.fork?.source }
    })
    if (r.result) await this.#release(r.result)
  }

  /** Drops one fork reference from `path`; collects it (and up the chain) when it was deleted and unreferenced. */
  async #release(path: string): Promise<void> {
    let target: string | undefined = path
    while (target) {
      const now = this.#now()
      const r: { result: string | undefined } = await this.store.transact(target, (cur) => {
        if (!cur) return { op: 'keep' as const, result: undefined }
        const refs = Math.max(0, (cur.forkRefs ?? 0) - 1)
        const dead = cur.deleted || (cur.expiresAt !== undefined && cur.expiresAt <= now)
        if (refs === 0 && dead) return { op: 'delete' as const, result: cur.fork?.source }
        return { op: 'put' as const, meta: { ...cur, forkRefs: refs }, result: undefined }
      })
      target = r.result
    }
  }

  /**
   * Removes expired streams (soft-deleting the ones forks still read).
   * Called periodically; also safe to call from several processes.
   */
  async sweep(limit = 100): Promise<number> {
    const now = this.#now()
    const paths = await this.store.expired(now, limit)
    for (const path of paths) {
      const r = await this.store.transact(path, (cur) => {
        if (!cur || cur.expiresAt === undefined || cur.expiresAt > now) return { op: 'keep' as const, result: undefined as string | undefined }
        if ((cur.forkRefs ?? 0) > 0) {
          const { expiresAt: _gone, ...rest } = cur
          return { op: 'put' as const, meta: { ...rest, deleted: true }, result: undefined }
        }
        return { op: 'delete' as const, result: cur.fork?.source }
      })
      if (r.result) await this.#release(r.result)
    }
    return paths.length
  }

  // ───────────────────────────── reads ─────────────────────────────

  /** Meta for HEAD: no TTL refresh. */
  async head(path: string): Promise<StreamMeta> {
    return this.#require(path, await this.store.head(path), this.#now())
  }

  /**
   * Reads from `from` (`-1` = start, `now` = tail) across fork boundaries,
   * refreshing a sliding TTL.
   */
  async read(path: string, from: string, limits: ReadLimits): Promise<ReadOutcome> {
    const now = this.#now()
    let meta: StreamMeta
    let records: StoredRecord[]
    if (from === 'now') {
      meta = this.#require(path, await this.store.head(path), now)
      records = []
      from = meta.nextOffset
    } else {
      const start = from === '-1' ? ZERO_OFFSET : from
      const own = await this.#readOwnOrChain(path, start, limits, now)
      meta = own.meta
      records = own.records
      from = start
    }
    await this.#refreshTtl(path, meta, now)
    const last = records[records.length - 1]
    const next = last ? last.next : from
    return { meta, records, next, upToDate: next >= meta.nextOffset }
  }

  async #readOwnOrChain(path: string, from: string, limits: ReadLimits, now: number): Promise<{ meta: StreamMeta; records: StoredRecord[] }> {
    // Fast path: one store call for the common read of a stream's own log.
    // Offsets before a fork's branch point are not in its own log (the store
    // says InvalidOffset); those go through the chain below.
    const head = await this.store.read(path, { from, maxBytes: limits.maxBytes, ...(limits.maxRecords ? { maxRecords: limits.maxRecords } : {}) }).catch(
      (err: unknown) => {
        if (err instanceof InvalidOffsetError) return undefined
        throw err
      },
    )
    if (head) {
      const meta = this.#require(path, head.meta, now)
      const base = meta.fork?.offset
      if (base === undefined || from >= base) {
        if (from > meta.nextOffset) throw new InvalidOffsetError(from, 'it is beyond the stream tail')
        return { meta, records: head.records }
      }
    }
    const meta = this.#require(path, head?.meta ?? (await this.store.head(path)), now)
    if (from > meta.nextOffset) throw new InvalidOffsetError(from, 'it is beyond the stream tail')
    if (!meta.fork || from >= meta.fork.offset) throw new InvalidOffsetError(from)
    return this.#readChain(path, meta, from, undefined, limits)
  }

  /** Records of `path` (whose meta is given) from `from`, stopping before `until`, reading inherited data from sources. */
  async #readChain(path: string, meta: StreamMeta, from: string, until: string | undefined, limits: ReadLimits): Promise<{ meta: StreamMeta; records: StoredRecord[] }> {
    const base = meta.fork?.offset
    if (meta.fork && base !== undefined && from < base) {
      const srcMeta = await this.store.head(meta.fork.source)
      if (!srcMeta) throw new InvalidOffsetError(from, 'its source data is gone')
      const bound = until !== undefined && until < base ? until : base
      const inherited = await this.#readChain(meta.fork.source, srcMeta, from, bound, limits)
      const records = inherited.records
      const last = records[records.length - 1]
      const reached = last ? last.next : from
      const used = records.reduce((n, r) => n + r.data.byteLength, 0)
      const roomRecords = limits.maxRecords === undefined || records.length < limits.maxRecords
      if (reached >= bound && bound === base && (until === undefined || base < until) && used < limits.maxBytes && roomRecords) {
        const own = await this.store.read(path, {
          from: base,
          maxBytes: limits.maxBytes - used,
          ...(until !== undefined ? { until } : {}),
          ...(limits.maxRecords !== undefined ? { maxRecords: limits.maxRecords - records.length } : {}),
        })
        return { meta: own.meta ?? meta, records: records.concat(own.records) }
      }
      return { meta, records }
    }
    const own = await this.store.read(path, {
      from,
      maxBytes: limits.maxBytes,
      ...(until !== undefined ? { until } : {}),
      ...(limits.maxRecords !== undefined ? { maxRecords: limits.maxRecords } : {}),
    })
    return { meta: own.meta ?? meta, records: own.records }
  }

  async #refreshTtl(path: string, meta: StreamMeta, now: number): Promise<void> {
    if (meta.ttlSeconds === undefined || meta.expiresAt === undefined) return
    // Skip the write when the expiry would move by less than a tenth of the
    // TTL (capped at 1 s): reads stay read-only under load.
    const gain = now + meta.ttlSeconds * 1000 - meta.expiresAt
    if (gain < Math.min(1000, meta.ttlSeconds * 100)) return
    await this.store.transact(path, (cur) => {
      if (!cur || this.#liveness(cur, now) !== 'live' || cur.ttlSeconds === undefined) return { op: 'keep' as const, result: undefined }
      return { op: 'put' as const, meta: { ...cur, expiresAt: now + cur.ttlSeconds * 1000 }, result: undefined }
    })
  }
}
