/** One stored event of a flow. */
export interface FlowEvent<T = unknown> {
  /** Unique id given at append. */
  id: string
  /** Position in the flow: assigned by the store, strictly increasing, starting at 1. */
  offset: number
  /** Milliseconds since the epoch, from the store's clock. */
  timestamp: number
  data: T
  /**
   * W3C traceparent of the span that appended the event, when tracing was
   * on: a consumer in any process continues that trace from it. Kept beside
   * `data`, never inside it.
   */
  traceparent?: string
}

/** What `append` answers once the event is stored. */
export interface FlowAppendResult {
  id: string
  offset: number
}

/**
 * Which events `read` returns. `offset` is the last offset the caller has
 * already seen: events AFTER it are returned (0, the default, reads from the
 * start). `tail: n` returns the last n events instead.
 */
export interface FlowReadOptions {
  offset?: number
  tail?: number
  /** At most this many events (default 1000, at most 10,000). */
  limit?: number
}

/** Where a live subscription starts: after `offset`, or at the flow's head when omitted. */
export interface FlowSubscribeOptions {
  offset?: number
}

/** Options of `stream()`: `live` keeps waiting for new events after catching up. */
export interface FlowStreamOptions {
  live?: boolean
  /** Start after this offset (default 0: from the first stored event). */
  offset?: number
  /** Stops the stream when aborted. */
  signal?: AbortSignal
}

/** Retention: events older than `maxAge` or beyond the newest `maxEvents` are deleted by a background sweep. */
export interface FlowRetentionOptions {
  maxAge?: number | string
  maxEvents?: number
  /** How often the sweep runs under `serve()` (default 60s). */
  sweepEvery?: number | string
}

/** Stops a subscription; resolves once the handler will not be called again. */
export interface Unsubscribe {
  (): Promise<void>
  /** Resolves when the subscription has fixed its start offset and listens for new events; rejects when it cannot start (e.g. a ConfigError). */
  ready: Promise<void>
}

/**
 * The storage behind a flow (PostgreSQL table or the streams server).
 * Offsets a store hands out become readable in offset order: once a reader
 * saw offset n, no offset below n appears later.
 */
export interface FlowStore {
  readonly kind: 'postgres' | 'streams'
  append(id: string, data: unknown, traceparent?: string | null): Promise<FlowEvent>
  /** Events after `after`, in offset order, at most `limit`. */
  read(after: number, limit: number): Promise<FlowEvent[]>
  /** The last `n` events, in offset order. */
  tail(n: number): Promise<FlowEvent[]>
  /** The highest offset handed out so far (0 when none). */
  head(): Promise<number>
  /** Starts listening for appends from every instance (idempotent). */
  listen(): Promise<void>
  /** A promise that resolves at the next append notice; never rejects. */
  nextWake(): Promise<void>
  /** Deletes events past retention; returns how many were deleted. */
  sweep(maxAgeMs: number | undefined, maxEvents: number | undefined): Promise<number>
  /** Stops listening. */
  close(): Promise<void>
}
