import { OnePipeError, isRetryable } from '@onepipe/core'
import { STREAM_PREFIX } from '../server/headers.js'
import { errorFromResponse, unreachable } from './errors.js'
import { IdempotentProducer, type ProducerOptions } from './producer.js'
import { sseBatches } from './sse.js'

export { IdempotentProducer, type ProducerOptions } from './producer.js'

/** Options of {@link StreamsClient}. */
export interface StreamsClientOptions {
  /** Server base URL. Default `ONEPIPE_STREAMS_URL`, else `http://127.0.0.1:${ONEPIPE_STREAMS_PORT ?? 9999}`. */
  url?: string
  /** Content type for `create`/`append` when none is given. Default `application/json`. */
  contentType?: string
  /** Extra headers on every request (e.g. Authorization). */
  headers?: Record<string, string>
  /** `fetch` to use (tests, custom agents). */
  fetch?: typeof fetch
  /**
   * Ask the server to compress catch-up reads (`Accept-Encoding: br, gzip`).
   * Default false: on the same host or a fast network compressing costs more
   * CPU than the bytes it saves; turn it on for clients across a slow link.
   */
  compress?: boolean
}

/** Options of `create`. */
export interface CreateOptions {
  contentType?: string
  /** Sliding time-to-live in seconds, refreshed by reads and writes. */
  ttlSeconds?: number
  /** Absolute expiry. */
  expiresAt?: Date
  /** Create the stream already closed. */
  closed?: boolean
  /** Initial content (raw bytes/text; for JSON streams a JSON array of messages). */
  body?: string | Uint8Array
  /** Fork an existing stream (its data up to `offset` becomes this stream's prefix). */
  forkFrom?: { name: string; offset?: string }
}

/** Options of `append`. */
export interface AppendOptions {
  contentType?: string
  /** `Stream-Seq`: must sort after the previous one (writer coordination). */
  seq?: string
  /** Idempotent producer: retries with the same tuple are applied once. */
  producer?: { id: string; epoch: number; seq: number }
  /** Close the stream with this append. */
  close?: boolean
}

/** One catch-up read or one live batch. */
export interface StreamBatch<T = unknown> {
  /** JSON streams: the messages. Other content types: empty (see `data`). */
  messages: T[]
  /** The raw payload bytes of the batch. */
  data: Uint8Array
  /** Offset to read from next (resume point after this batch). */
  offset: string
  /** The batch reached the stream's tail. */
  upToDate: boolean
  /** The stream is closed and this batch reached its end: no more data will come. */
  closed: boolean
}

/** Options of `read`. */
export interface ReadOptions {
  /** Start: `-1` (beginning, default), `now` (tail) or an offset from a previous batch. */
  offset?: string
  /** Most appends to return (OnePipe extension; the server also caps bytes). */
  limit?: number
}

/** Options of `subscribe`. */
export interface SubscribeOptions {
  /** Start: `-1` (default), `now`, or an offset to resume from. */
  offset?: string
  /** Most appends per batch. */
  limit?: number
  /** Stops the iteration. */
  signal?: AbortSignal
  /**
   * How to wait for new data: `long-poll` (default; one request per batch)
   * or `sse` (one long-lived connection; the socket is read only as fast as
   * the loop consumes, so TCP carries the backpressure).
   */
  live?: 'long-poll' | 'sse'
  /** First reconnect delay after a dropped connection, doubled up to `maxRetryDelayMs`. Default 50 ms. */
  retryDelayMs?: number
  /** Default 2 000 ms. */
  maxRetryDelayMs?: number
}

const dec = new TextDecoder()

function defaultUrl(): string {
  const env = process.env.ONEPIPE_STREAMS_URL
  if (env) return env.replace(/\/+$/, '')
  return `http://127.0.0.1:${process.env.ONEPIPE_STREAMS_PORT ?? '9999'}`
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const t = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
    function done() {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
  })
}

/**
 * Client of the Unbroken streams protocol: create, append, read from an
 * offset, and subscribe as an async iterator with backpressure (the next
 * batch is fetched only when the consumer asks for it) that resumes from the
 * last offset after a dropped connection.
 *
 * @example
 * ```ts
 * const client = new StreamsClient({ url: 'http://127.0.0.1:9999' })
 * const orders = client.stream('flows/orders')
 * await orders.create()
 * await orders.append({ id: 1 })
 * for await (const batch of orders.subscribe({ offset: '-1' })) {
 *   for (const order of batch.messages) handle(order)
 * }
 * ```
 */
export class StreamsClient {
  readonly url: string
  readonly #contentType: string
  readonly #headers: Record<string, string>
  readonly #fetch: typeof fetch

  constructor(options: StreamsClientOptions = {}) {
    this.url = (options.url ?? defaultUrl()).replace(/\/+$/, '')
    this.#contentType = options.contentType ?? 'application/json'
    // Node's fetch asks for gzip by default; the server honours Accept-Encoding, so say what we want.
    this.#headers = { 'accept-encoding': options.compress ? 'br, gzip' : 'identity', ...options.headers }
    this.#fetch = options.fetch ?? globalThis.fetch
  }

  /** A handle bound to one stream name, e.g. `flows/orders`. @example client.stream<Order>('flows/orders') */
  stream<T = unknown>(name: string): StreamHandle<T> {
    return new StreamHandle<T>(this, name)
  }

  /** An exactly-once, batching writer for one JSON stream (see {@link IdempotentProducer}). */
  producer(name: string, options: ProducerOptions): IdempotentProducer {
    return new IdempotentProducer(this, name, options)
  }

  /** URL of a stream (names keep their `/`, other characters are escaped). */
  urlOf(name: string): string {
    return `${this.url}${STREAM_PREFIX}${name.split('/').map(encodeURIComponent).join('/')}`
  }

  async #request(name: string, url: string, init: RequestInit): Promise<Response> {
    let res: Response
    try {
      res = await this.#fetch(url, { ...init, headers: { ...this.#headers, ...(init.headers as Record<string, string>) } })
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err
      throw unreachable(this.url, err)
    }
    if (res.status >= 400) throw await errorFromResponse(name, res)
    return res
  }

  /**
   * Creates a stream; creating it again with the same settings is a no-op.
   * Returns whether it was new and its tail offset.
   */
  async create(name: string, options: CreateOptions = {}): Promise<{ created: boolean; offset: string }> {
    const headers: Record<string, string> = {}
    if (!options.forkFrom || options.contentType) headers['content-type'] = options.contentType ?? this.#contentType
    if (options.ttlSeconds !== undefined) headers['stream-ttl'] = String(options.ttlSeconds)
    if (options.expiresAt) headers['stream-expires-at'] = options.expiresAt.toISOString()
    if (options.closed) headers['stream-closed'] = 'true'
    if (options.forkFrom) {
      headers['stream-forked-from'] = `${STREAM_PREFIX}${options.forkFrom.name}`
      if (options.forkFrom.offset) headers['stream-fork-offset'] = options.forkFrom.offset
    }
    const res = await this.#request(name, this.urlOf(name), { method: 'PUT', headers, ...(options.body !== undefined ? { body: options.body } : {}) })
    return { created: res.status === 201, offset: res.headers.get('stream-next-offset') ?? '' }
  }

  /**
   * Appends one message and returns the stream's new tail offset. In JSON
   * mode (the default) `value` is serialized and always stored as ONE
   * message (arrays and strings included; bytes are sent as they are); for
   * raw streams pass a string or bytes with a `contentType`.
   */
  async append(name: string, value: unknown, options: AppendOptions = {}): Promise<string> {
    const contentType = options.contentType ?? this.#contentType
    const json = /json/i.test(contentType)
    // JSON values are wrapped in an array so an array value stays one message.
    const body = json && !(value instanceof Uint8Array) ? `[${JSON.stringify(value)}]` : (value as string | Uint8Array)
    return this.#post(name, contentType, body, options)
  }

  /** Appends several JSON messages in ONE request (one offset for the batch). */
  async appendBatch(name: string, values: readonly unknown[], options: AppendOptions = {}): Promise<string> {
    return this.#post(name, options.contentType ?? this.#contentType, JSON.stringify(values), options)
  }

  /** Closes a stream: readers see the end, appends are refused. Returns the final offset. */
  async close(name: string, options: Pick<AppendOptions, 'producer'> = {}): Promise<string> {
    return this.#post(name, undefined, undefined, { ...options, close: true })
  }

  async #post(name: string, contentType: string | undefined, body: string | Uint8Array | undefined, options: AppendOptions): Promise<string> {
    const headers: Record<string, string> = {}
    if (contentType !== undefined) headers['content-type'] = contentType
    if (options.seq !== undefined) headers['stream-seq'] = options.seq
    if (options.close) headers['stream-closed'] = 'true'
    if (options.producer) {
      headers['producer-id'] = options.producer.id
      headers['producer-epoch'] = String(options.producer.epoch)
      headers['producer-seq'] = String(options.producer.seq)
    }
    const res = await this.#request(name, this.urlOf(name), { method: 'POST', headers, ...(body !== undefined ? { body } : {}) })
    return res.headers.get('stream-next-offset') ?? ''
  }

  /** Reads what is there from `offset` (no waiting). */
  async read<T = unknown>(name: string, options: ReadOptions = {}): Promise<StreamBatch<T>> {
    return this.#read<T>(name, options.offset ?? '-1', options.limit, undefined)
  }

  async #read<T>(name: string, offset: string, limit: number | undefined, live: { cursor: string | null; signal?: AbortSignal } | undefined): Promise<StreamBatch<T>> {
    let url = `${this.urlOf(name)}?offset=${encodeURIComponent(offset)}`
    if (limit !== undefined) url += `&limit=${limit}`
    if (live) url += `&live=long-poll${live.cursor ? `&cursor=${live.cursor}` : ''}`
    const res = await this.#request(name, url, { method: 'GET', ...(live?.signal ? { signal: live.signal } : {}) })
    const h = res.headers
    const data = res.status === 204 ? new Uint8Array(0) : new Uint8Array(await res.arrayBuffer())
    const json = /json/i.test(h.get('content-type') ?? '')
    const messages = json && data.byteLength > 0 ? (JSON.parse(dec.decode(data)) as T[]) : []
    const batch: StreamBatch<T> = {
      messages,
      // An empty JSON read is `[]`: report it as no data.
      data: json && messages.length === 0 ? new Uint8Array(0) : data,
      offset: h.get('stream-next-offset') ?? offset,
      upToDate: h.get('stream-up-to-date') === 'true',
      closed: h.get('stream-closed') === 'true',
    }
    if (live) live.cursor = h.get('stream-cursor')
    return batch
  }

  /** Stream metadata without reading data. */
  async head(name: string): Promise<{ contentType: string; offset: string; closed: boolean; ttlSeconds?: number; expiresAt?: Date }> {
    const res = await this.#request(name, this.urlOf(name), { method: 'HEAD' })
    const h = res.headers
    const ttl = h.get('stream-ttl')
    const exp = h.get('stream-expires-at')
    return {
      contentType: h.get('content-type') ?? '',
      offset: h.get('stream-next-offset') ?? '',
      closed: h.get('stream-closed') === 'true',
      ...(ttl !== null ? { ttlSeconds: Number(ttl) } : {}),
      ...(exp !== null ? { expiresAt: new Date(exp) } : {}),
    }
  }

  /** Deletes a stream. */
  async delete(name: string): Promise<void> {
    await this.#request(name, this.urlOf(name), { method: 'DELETE' })
  }

  /**
   * Live batches from `offset`, as an async iterator. Each `next()` issues at
   * most one long-poll, so a slow consumer never loses data and never makes
   * the client buffer: unread data simply stays on the server. When the
   * connection drops (server restart, network), it retries from the offset
   * after the last batch it handed out, with exponential backoff, until
   * `signal` aborts. Ends after the final batch of a closed stream.
   */
  subscribe<T = unknown>(name: string, options: SubscribeOptions = {}): AsyncIterableIterator<StreamBatch<T>> {
    if (options.live === 'sse') return this.#subscribeSse<T>(name, options)
    let offset = options.offset ?? '-1'
    const live: { cursor: string | null; signal?: AbortSignal } = { cursor: null, ...(options.signal ? { signal: options.signal } : {}) }
    const base = options.retryDelayMs ?? 50
    const max = options.maxRetryDelayMs ?? 2_000
    let done = false
    const next = async (): Promise<IteratorResult<StreamBatch<T>>> => {
      let delay = base
      while (!done && !options.signal?.aborted) {
        let batch: StreamBatch<T>
        try {
          batch = await this.#read<T>(name, offset, options.limit, live)
        } catch (err) {
          if (options.signal?.aborted) break
          if (!isRetryable(err)) {
            done = true
            throw err
          }
          await sleep(delay, options.signal)
          delay = Math.min(max, delay * 2)
          continue
        }
        delay = base
        offset = batch.offset
        if (batch.closed && batch.upToDate) done = true
        if (batch.data.byteLength > 0 || done) return { value: batch, done: false }
      }
      done = true
      return { value: undefined, done: true }
    }
    return {
      next,
      return: () => {
        done = true
        return Promise.resolve({ value: undefined, done: true })
      },
      [Symbol.asyncIterator]() {
        return this
      },
    }
  }

  async *#subscribeSse<T>(name: string, options: SubscribeOptions): AsyncGenerator<StreamBatch<T>, void, undefined> {
    let offset = options.offset ?? '-1'
    let cursor: string | undefined
    const base = options.retryDelayMs ?? 50
    const max = options.maxRetryDelayMs ?? 2_000
    let delay = base
    const signal = options.signal
    while (!signal?.aborted) {
      let url = `${this.urlOf(name)}?offset=${encodeURIComponent(offset)}&live=sse`
      if (options.limit !== undefined) url += `&limit=${options.limit}`
      if (cursor) url += `&cursor=${cursor}`
      try {
        const res = await this.#request(name, url, { method: 'GET', headers: { accept: 'text/event-stream' }, ...(signal ? { signal } : {}) })
        for await (const batch of sseBatches<T>(res, (c) => (cursor = c))) {
          delay = base
          if (batch.offset) offset = batch.offset
          if (batch.data.byteLength > 0 || batch.closed) yield batch
          if (batch.closed) return
        }
        // The server ended the connection (its SSE lifetime): reconnect from `offset`.
        continue
      } catch (err) {
        if (signal?.aborted) return
        // Protocol errors (404, 400…) end the subscription; anything on the wire is retried.
        if (err instanceof OnePipeError && !err.retryable) throw err
      }
      await sleep(delay, signal)
      delay = Math.min(max, delay * 2)
    }
  }
}

/**
 * A {@link StreamsClient} bound to one stream name.
 *
 * @example
 * ```ts
 * const orders = new StreamsClient().stream<{ id: number }>('flows/orders')
 * const offset = await orders.append({ id: 1 })
 * ```
 */
export class StreamHandle<T = unknown> {
  constructor(
    readonly client: StreamsClient,
    readonly name: string,
  ) {}

  create(options?: CreateOptions) {
    return this.client.create(this.name, options)
  }
  append(value: T, options?: AppendOptions) {
    return this.client.append(this.name, value, options)
  }
  appendBatch(values: readonly T[], options?: AppendOptions) {
    return this.client.appendBatch(this.name, values, options)
  }
  read(options?: ReadOptions) {
    return this.client.read<T>(this.name, options)
  }
  subscribe(options?: SubscribeOptions) {
    return this.client.subscribe<T>(this.name, options)
  }
  head() {
    return this.client.head(this.name)
  }
  close(options?: Pick<AppendOptions, 'producer'>) {
    return this.client.close(this.name, options)
  }
  delete() {
    return this.client.delete(this.name)
  }
  producer(options: ProducerOptions) {
    return this.client.producer(this.name, options)
  }
}
