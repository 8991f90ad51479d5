/**
 * The storage contract of the Unbroken streams server.
 *
 * Division of labour: every protocol rule (idempotent producers, `Stream-Seq`,
 * closed streams, TTL and expiry, forks, content types, JSON mode) lives in
 * ONE shared layer above the stores (`src/server/engine.ts`). A store only
 * has to do three things, durably and atomically:
 *
 * 1. keep one JSON-serialisable {@link StreamMeta} document per stream path,
 * 2. keep an append-only log of opaque records per stream path,
 * 3. apply "read meta → decide → write meta + append records" as ONE atomic
 *    step ({@link StreamStore.transact}), and tell watchers when it happened
 *    ({@link StreamStore.watch}).
 *
 * ## Offsets
 *
 * An offset names a position BETWEEN records of one stream. It is the string
 * `RRRRRRRRRRRRRRRR_BBBBBBBBBBBBBBBB`: two 16-digit zero-padded decimal numbers,
 * `R` = how many records precede the position, `B` = how many payload bytes
 * precede it. Equal-width padding makes offsets of one stream compare
 * correctly as plain strings (`a < b` ⇔ `a` is earlier), so clients and stores
 * may sort and compare them without parsing. `0000000000000000_0000000000000000`
 * is the start of every root stream. The record stored at offset `o` with `n`
 * bytes ends at `advanceOffset(o, n)`. Only offsets at record boundaries (and
 * the tail) are ever issued; any other well-formed offset is "never issued"
 * and a store must reject it with {@link InvalidOffsetError}.
 *
 * A stream's log does not have to start at zero: a fork's own log starts at
 * the offset where it branched off its source (the engine passes that as the
 * new stream's `meta.nextOffset` on creation), so offsets stay increasing
 * across the fork boundary.
 *
 * @example
 * ```ts
 * encodeOffset(3, 150)      // '0000000000000003_0000000000000150'
 * advanceOffset(ZERO_OFFSET, 5) // '0000000000000001_0000000000000005'
 * ```
 */
import { OnePipeError, NotFoundError, ConflictError } from '@onepipe/core'

// ───────────────────────────── offsets ─────────────────────────────

/** Width of each half of an offset. 16 digits covers 10^16 records/bytes. */
const OFFSET_DIGITS = 16
const OFFSET_RE = /^(\d{16})_(\d{16})$/

/** The offset of the first record of every root stream. */
export const ZERO_OFFSET = '0000000000000000_0000000000000000'

/** The two counters an offset encodes. */
export interface OffsetParts {
  /** Records before this position. */
  records: number
  /** Payload bytes before this position. */
  bytes: number
}

/**
 * Builds an offset string from its counters.
 *
 * @example
 * ```ts
 * encodeOffset(1, 5) // '0000000000000001_0000000000000005'
 * ```
 */
export function encodeOffset(records: number, bytes: number): string {
  return `${String(records).padStart(OFFSET_DIGITS, '0')}_${String(bytes).padStart(OFFSET_DIGITS, '0')}`
}

/**
 * Parses an offset, or returns `undefined` when the text is not a well-formed
 * offset (the HTTP layer answers 400 then).
 *
 * @example
 * ```ts
 * decodeOffset('0000000000000001_0000000000000005') // { records: 1, bytes: 5 }
 * decodeOffset('0,1') // undefined
 * ```
 */
export function decodeOffset(offset: string): OffsetParts | undefined {
  const m = OFFSET_RE.exec(offset)
  if (!m) return undefined
  const records = Number(m[1])
  const bytes = Number(m[2])
  if (!Number.isSafeInteger(records) || !Number.isSafeInteger(bytes)) return undefined
  return { records, bytes }
}

/** Whether a string is a well-formed offset. @example isOffset(ZERO_OFFSET) // true */
export function isOffset(offset: string): boolean {
  return OFFSET_RE.test(offset)
}

/**
 * The offset after a record of `byteLength` bytes stored at `offset`.
 *
 * @example
 * ```ts
 * advanceOffset(ZERO_OFFSET, 5) // '0000000000000001_0000000000000005'
 * ```
 */
export function advanceOffset(offset: string, byteLength: number): string {
  const p = decodeOffset(offset)
  if (!p) throw new InvalidOffsetError(offset)
  return encodeOffset(p.records + 1, p.bytes + byteLength)
}

// ───────────────────────────── metadata ─────────────────────────────

/** Last accepted state of one idempotent producer (`Producer-Id`). */
export interface ProducerState {
  epoch: number
  /** Highest accepted `Producer-Seq` in `epoch`. */
  seq: number
  /** `Stream-Next-Offset` answered for that append (echoed on duplicates). */
  offset: string
}

/** Where a fork branched off. */
export interface ForkInfo {
  /** Path of the source stream. */
  source: string
  /** Offset in the source up to which the fork inherits data (exclusive). */
  offset: string
}

/**
 * Everything known about one stream except its records. Stores persist it as
 * an opaque JSON document (`JSON.stringify`-safe: numbers, strings, booleans,
 * plain objects) and must round-trip every field, including ones added later.
 * The ENGINE decides every field; the store maintains only `nextOffset`
 * (advancing it over appended records) and `version`.
 *
 * Treat a meta object as immutable: stores may hand out the object they hold,
 * the engine always returns a fresh object from its plans.
 */
export interface StreamMeta {
  /** Normalised content type (`application/json` turns on JSON mode). */
  contentType: string
  /** Creation time, ms since epoch. Part of the ETag so a re-created path never matches an old ETag. */
  createdAt: number
  /** Tail: the offset the next appended record gets. Maintained by the store. */
  nextOffset: string
  /** Bumped by the store on every applied `put`. Stores may use it for optimistic concurrency. */
  version: number
  /** Closed streams accept no appends; readers get `Stream-Closed: true` at the tail. */
  closed: boolean
  /** Producer whose append/close closed the stream (so a retried close is idempotent). */
  closedBy?: { id: string; epoch: number; seq: number }
  /** Sliding TTL in seconds (`Stream-TTL`), refreshed on access. */
  ttlSeconds?: number
  /** Absolute expiry, ms since epoch (from `Stream-Expires-At`, or access time + TTL). */
  expiresAt?: number
  /** Last `Stream-Seq` accepted (compared as a plain string). */
  lastSeq?: string
  /** Idempotent producers by `Producer-Id`. */
  producers?: Record<string, ProducerState>
  /** Set when this stream is a fork. */
  fork?: ForkInfo
  /** Sub-offset given at fork creation (kept so an idempotent re-PUT can compare it). */
  forkSubOffset?: number
  /** How many live forks read through this stream; it is only soft-deleted while > 0. */
  forkRefs?: number
  /** Soft-deleted: gone for clients (410), data kept for its forks. */
  deleted?: boolean
}

// ───────────────────────────── records ─────────────────────────────

/** One record to append: the payload of one POST (or one PUT body). */
export interface AppendRecord {
  /** Opaque payload. In JSON mode: the batch's JSON values joined by `,`. */
  data: Uint8Array
  /** Number of protocol messages inside (JSON values in a batch; 1 otherwise). */
  count: number
}

/** A record as read back, with its position. */
export interface StoredRecord extends AppendRecord {
  /** Offset where the record starts. */
  offset: string
  /** Offset right after it (= `advanceOffset(offset, data.byteLength)`). */
  next: string
}

// ───────────────────────────── transactions ─────────────────────────────

/**
 * What a plan decided. `result` is handed back untouched.
 * - `keep`: change nothing.
 * - `put`: write `meta` (creating the stream when absent) and append
 *   `append` records after the current tail. With `reset: true` the store
 *   first drops the existing log and meta entirely and starts a fresh log at
 *   `meta.nextOffset` (used to re-create an expired path).
 *   When the stream exists and `reset` is not set, the store IGNORES
 *   `meta.nextOffset` and `meta.version` from the plan and keeps its own.
 * - `delete`: remove meta and every record of the path.
 */
export type StreamChange<R> =
  | { op: 'keep'; result: R }
  | { op: 'put'; meta: StreamMeta; append?: readonly AppendRecord[]; reset?: boolean; result: R }
  | { op: 'delete'; result: R }

/**
 * The deciding function of a transaction. MUST be synchronous, pure and
 * side-effect free: optimistic stores (Redis WATCH/MULTI) may call it several
 * times. It may throw a OnePipeError to abort; the store then changes nothing
 * and rethrows that error unchanged.
 */
export type StreamPlan<R> = (current: StreamMeta | undefined) => StreamChange<R>

/** What a transaction did. */
export interface TransactResult<R> {
  result: R
  /** Meta after the transaction (`undefined` if the stream does not exist). */
  meta: StreamMeta | undefined
  /** Positions of the appended records, in order (empty if none). */
  appended: { offset: string; next: string }[]
}

/** Bounds of one read. */
export interface ReadOptions {
  /** First record to return: must be a record boundary of this stream's log or its tail. */
  from: string
  /** Stop before this offset (exclusive), e.g. a fork's branch point. */
  until?: string
  /** Soft cap on returned payload bytes; at least one record is returned if any exists. */
  maxBytes?: number
  /** Hard cap on returned records. */
  maxRecords?: number
}

/** Result of one read: a consistent snapshot of meta and the records after `from`. */
export interface ReadResult {
  /** `undefined` when the path has no stream. */
  meta: StreamMeta | undefined
  /** Records in offset order, none at or beyond `meta.nextOffset` of the snapshot. */
  records: StoredRecord[]
}

/**
 * A durable home for streams. Implementations: memory (`stores/memory`),
 * file, Redis, PostgreSQL. Each must pass `test/store-suite.ts`.
 *
 * Rules every implementation follows:
 * - Paths are opaque strings (already validated by the engine: no `..`, no
 *   NUL). Map them to keys/file names safely (hash or encode them).
 * - `transact` is linearizable per path across every process sharing the
 *   backend: two concurrent transactions on one path never both see the
 *   same `version`. Offsets come from the store: the first appended record
 *   gets the current `nextOffset`, each next one `advanceOffset(prev, bytes)`.
 * - A `transact` promise resolves only after the change is durable (file:
 *   fsync'd, DB: committed). Watchers are notified after that.
 * - A failed transaction leaves meta and log exactly as they were.
 * - Reads never return records that a later crash could lose.
 *
 * @example
 * ```ts
 * const store = new MemoryStreamStore()
 * const { appended } = await store.transact('orders', (cur) => ({
 *   op: 'put',
 *   meta: cur ?? { contentType: 'text/plain', createdAt: Date.now(), nextOffset: ZERO_OFFSET, version: 0, closed: false },
 *   append: [{ data: new TextEncoder().encode('hi'), count: 1 }],
 *   result: undefined,
 * }))
 * const { records } = await store.read('orders', { from: ZERO_OFFSET })
 * ```
 */
export interface StreamStore {
  /** Short name for logs and `/health` (`memory`, `file`, `redis`, `postgres`). */
  readonly kind: string

  /** Current meta of a path, or `undefined`. */
  head(path: string): Promise<StreamMeta | undefined>

  /**
   * Atomically: load the meta of `path`, call `plan` with it, apply the
   * returned change (meta write + record appends, or delete). Resolves after
   * the change is durable. Rethrows what `plan` throws without changing
   * anything.
   */
  transact<R>(path: string, plan: StreamPlan<R>): Promise<TransactResult<R>>

  /**
   * Records of `path` starting exactly at `options.from`, bounded by
   * `until`, `maxBytes`, `maxRecords` and the tail, plus the meta they were
   * read with. Throws {@link InvalidOffsetError} when `from` is neither a
   * record boundary of this path's log nor its tail (e.g. an offset from
   * before the log's start, mid-record, or beyond the tail). A missing
   * stream gives `{ meta: undefined, records: [] }`.
   */
  read(path: string, options: ReadOptions): Promise<ReadResult>

  /**
   * Calls `listener` (no arguments) after every applied change to `path` —
   * appends, meta updates, deletes — including changes made by OTHER
   * processes on shared backends (Redis pub/sub, PostgreSQL LISTEN/NOTIFY).
   * Spurious calls are allowed; missed ones are not (the server wakes
   * long-polls and SSE from this instead of polling). Returns an unsubscribe
   * function.
   */
  watch(path: string, listener: () => void): () => void

  /** Paths whose meta has `expiresAt <= now` (ms). Used by the engine's expiry sweep. */
  expired(now: number, limit: number): Promise<string[]>

  /** Releases connections, timers and file handles. Pending transactions finish first. */
  close(): Promise<void>
}

// ───────────────────────────── errors ─────────────────────────────

/** Base of every streams error; `status` is the HTTP answer. */
export class StreamError extends OnePipeError {}

/**
 * An offset that is malformed or was never issued by this stream.
 *
 * @example
 * ```ts
 * throw new InvalidOffsetError('0000000000000000_0000000000000003')
 * ```
 */
export class InvalidOffsetError extends StreamError {
  constructor(offset: string, reason = 'it was never issued by this stream') {
    super('STREAM_INVALID_OFFSET', `Offset "${offset}" is not valid: ${reason}. Use an offset from a Stream-Next-Offset header, -1 or now.`, {
      status: 400,
      details: { offset },
    })
  }
}

/**
 * A request the protocol rejects as malformed (400): bad header, empty body, malformed JSON…
 *
 * @example
 * ```ts
 * throw new StreamBadRequestError('STREAM_EMPTY_BODY', 'POST needs a body; send at least one byte')
 * ```
 */
export class StreamBadRequestError extends StreamError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, { status: 400, ...(details ? { details } : {}) })
  }
}

/**
 * No stream at this path (or it expired).
 *
 * @example
 * ```ts
 * throw new StreamNotFoundError('flows/orders')
 * ```
 */
export class StreamNotFoundError extends NotFoundError {
  constructor(path: string) {
    super('STREAM_NOT_FOUND', `No stream "${path}". Create it with PUT first.`, { path })
  }
}

/**
 * The stream was deleted but is kept for its forks: 410 Gone.
 *
 * @example
 * ```ts
 * throw new StreamGoneError('flows/orders')
 * ```
 */
export class StreamGoneError extends StreamError {
  constructor(path: string) {
    super('STREAM_GONE', `Stream "${path}" was deleted; its forks still read its data.`, { status: 410, details: { path } })
  }
}

/**
 * The request conflicts with the stream's state: different config on re-create,
 * content-type mismatch, `Stream-Seq` not increasing, a closed stream.
 *
 * @example
 * ```ts
 * throw new StreamConflictError('STREAM_SEQ_CONFLICT', 'Stream-Seq "001" is not above "002"')
 * ```
 */
export class StreamConflictError extends ConflictError {}

/**
 * Append or close on a closed stream (409 with `Stream-Closed: true`).
 *
 * @example
 * ```ts
 * throw new StreamClosedError('flows/orders', '0000000000000001_0000000000000005')
 * ```
 */
export class StreamClosedError extends ConflictError {
  readonly nextOffset: string
  constructor(path: string, nextOffset: string) {
    super('STREAM_CLOSED', `Stream "${path}" is closed and accepts no more appends.`, { path, nextOffset })
    this.nextOffset = nextOffset
  }
}

/**
 * A producer epoch older than the stored one (403, zombie fencing).
 *
 * @example
 * ```ts
 * throw new ProducerFencedError('p1', 2)
 * ```
 */
export class ProducerFencedError extends StreamError {
  readonly currentEpoch: number
  constructor(producerId: string, currentEpoch: number) {
    super('PRODUCER_FENCED', `Producer "${producerId}" was fenced by epoch ${currentEpoch}; start again with a higher epoch.`, {
      status: 403,
      details: { producerId, currentEpoch },
    })
    this.currentEpoch = currentEpoch
  }
}

/**
 * A producer skipped sequence numbers (409 with the expected seq).
 *
 * @example
 * ```ts
 * throw new ProducerSequenceError('p1', 3, 5)
 * ```
 */
export class ProducerSequenceError extends ConflictError {
  readonly expectedSeq: number
  readonly receivedSeq: number
  constructor(producerId: string, expectedSeq: number, receivedSeq: number) {
    super('PRODUCER_SEQ_GAP', `Producer "${producerId}" sent seq ${receivedSeq} but ${expectedSeq} was expected; resend from ${expectedSeq}.`, {
      producerId,
      expectedSeq,
      receivedSeq,
    })
    this.expectedSeq = expectedSeq
    this.receivedSeq = receivedSeq
  }
}

/**
 * A request body above the server's limit (413).
 *
 * @example
 * ```ts
 * throw new PayloadTooLargeError(2_000_000, 1_048_576)
 * ```
 */
export class PayloadTooLargeError extends StreamError {
  constructor(size: number, limit: number) {
    super('STREAM_PAYLOAD_TOO_LARGE', `Body of ${size} bytes exceeds the limit of ${limit} bytes; split it into smaller appends.`, {
      status: 413,
      details: { size, limit },
    })
  }
}
