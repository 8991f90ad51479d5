import { setMaxListeners } from 'node:events'
import type { AddressInfo } from 'node:net'
import { createServer, type Server } from 'node:http'
import type { Hono } from 'hono'
import { ConfigError } from '@onepipe/core'
import type { StreamStore } from '../stores/types.js'
import { StreamEngine } from './engine.js'
import { Subscriptions } from './subscriptions.js'
import { nodeListener, streamsApp, streamsHandler, type Reply } from './http.js'
import type { StreamRequest } from './request.js'

export { StreamEngine, DEFAULT_CONTENT_TYPE } from './engine.js'
export type { CreateRequest, AppendRequest, AppendOutcome, ReadOutcome, ReadLimits, ProducerTuple } from './engine.js'
export { STREAM_PREFIX } from './headers.js'
export { COMPRESS_THRESHOLD, compressor, isCompressibleType, negotiateEncoding, type ContentCoding } from './compress.js'

/** Options of {@link UnbrokenServer}. */
export interface UnbrokenServerOptions {
  /** Where streams live (see `createStore`). The server closes it on `stop()` unless `ownsStore` is false. */
  store: StreamStore
  /** TCP port; 0 picks a free one. Default 9999. */
  port?: number
  /** Interface to bind. Default `127.0.0.1`. */
  host?: string
  /** How long a `live=long-poll` read waits for data before answering 204. Default 20 000 ms. */
  longPollTimeoutMs?: number
  /** How long one SSE connection stays open before the server ends it (clients resume from their offset). Default 60 000 ms. */
  sseLifetimeMs?: number
  /** Largest accepted request body; bigger ones get 413. Default 4 MiB. */
  maxBodyBytes?: number
  /** Soft cap on one read's response payload (at least one append is always returned). Default 1 MiB. */
  maxReadBytes?: number
  /** How often expired streams are collected. Default 5 000 ms; 0 turns the sweep off. */
  sweepIntervalMs?: number
  /**
   * Serve the protocol's reserved subscription API (`/v1/stream/__ds/…`:
   * webhook and pull-wake subscriptions). Subscriptions live in this
   * process's memory. Default true.
   */
  subscriptions?: boolean
  /**
   * Compress catch-up reads of 1 KiB or more of text or JSON with br or gzip
   * when the client's Accept-Encoding asks for it. Default true; turn it off
   * when every client is on the same host, where it only costs CPU.
   */
  compression?: boolean
  /** Whether `stop()` also closes the store. Default true. */
  ownsStore?: boolean
  /**
   * How long `stop()` lets responses under way be written before it drops
   * their connections: long-polls answer and SSE streams end at once when
   * the server stops, so this is only for them to reach the socket (and for
   * a request already being handled to finish). Default 1 000 ms.
   */
  stopGraceMs?: number
}

/**
 * The Unbroken streams server: the Durable Streams protocol under
 * `/v1/stream/*` (with OnePipe's `flows/`, `channels/…/calls` and `signals/`
 * namespaces) plus `/health`, over any {@link StreamStore}.
 *
 * @example
 * ```ts
 * const server = new UnbrokenServer({ store: await createStore('memory'), port: 0 })
 * const { url } = await server.start()
 * await fetch(`${url}/v1/stream/flows/orders`, { method: 'PUT', headers: { 'content-type': 'application/json' } })
 * await server.stop()
 * ```
 */
export class UnbrokenServer {
  /** The Hono app; use `app.request()` for in-process tests. */
  readonly app: Hono
  readonly engine: StreamEngine
  readonly #options: UnbrokenServerOptions
  #server: Server | undefined
  readonly #handle: (req: StreamRequest) => Promise<Reply>
  readonly #subscriptions: Subscriptions | undefined
  #sweep: NodeJS.Timeout | undefined
  #url: string | undefined
  #shutdown = unlimited(new AbortController())

  constructor(options: UnbrokenServerOptions) {
    const positive = (name: string, v: number | undefined) => {
      if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new ConfigError('STREAMS_CONFIG', `${name} must be a non-negative number, got ${v}`)
    }
    positive('longPollTimeoutMs', options.longPollTimeoutMs)
    positive('sseLifetimeMs', options.sseLifetimeMs)
    positive('maxBodyBytes', options.maxBodyBytes)
    positive('maxReadBytes', options.maxReadBytes)
    positive('stopGraceMs', options.stopGraceMs)
    this.#options = options
    this.engine = new StreamEngine(options.store)
    this.#subscriptions = options.subscriptions === false ? undefined : new Subscriptions(this.engine)
    this.#handle = streamsHandler(this.engine, {
      longPollTimeoutMs: options.longPollTimeoutMs ?? 20_000,
      sseLifetimeMs: options.sseLifetimeMs ?? 60_000,
      maxBodyBytes: options.maxBodyBytes ?? 4 * 1024 * 1024,
      maxReadBytes: options.maxReadBytes ?? 1024 * 1024,
      shutdown: () => this.#shutdown.signal,
      compression: options.compression ?? true,
      ...(this.#subscriptions ? { subscriptions: this.#subscriptions } : {}),
    })
    this.app = streamsApp(this.#handle)
  }

  /** Handles one request in process (no socket). */
  fetch = (request: Request): Response | Promise<Response> => this.app.fetch(request)

  /** Base URL once started (`http://127.0.0.1:PORT`). */
  get url(): string | undefined {
    return this.#url
  }

  /** Listens on the configured port and starts the expiry sweep. */
  async start(): Promise<{ url: string; port: number }> {
    if (this.#server) throw new ConfigError('STREAMS_STARTED', 'UnbrokenServer is already started')
    const host = this.#options.host ?? '127.0.0.1'
    const server = createServer({ keepAliveTimeout: 65_000 }, nodeListener(this.#handle, () => this.#shutdown.signal))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.#options.port ?? 9999, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.#server = server
    if (this.#shutdown.signal.aborted) this.#shutdown = unlimited(new AbortController())
    const port = (server.address() as AddressInfo).port
    this.#url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
    const every = this.#options.sweepIntervalMs ?? 5_000
    if (every > 0) {
      this.#sweep = setInterval(() => {
        this.engine.sweep().catch((err: unknown) => console.error('[onepipe streams] expiry sweep failed', err))
      }, every)
      this.#sweep.unref()
    }
    return { url: this.#url, port }
  }

  /**
   * Stops listening and ends every live response at once: a waiting
   * long-poll answers 204 and an SSE stream ends normally, so clients see a
   * clean end (and resume from their offset elsewhere) rather than a reset.
   * Connections still open after `stopGraceMs` are dropped; then the store
   * is closed.
   */
  async stop(): Promise<void> {
    clearInterval(this.#sweep)
    this.#sweep = undefined
    this.#shutdown.abort()
    this.#subscriptions?.close()
    const server = this.#server
    this.#server = undefined
    this.#url = undefined
    if (server) {
      let isClosed = false
      const closed = new Promise<void>((resolve) =>
        server.close(() => {
          isClosed = true
          resolve()
        }),
      )
      const until = Date.now() + (this.#options.stopGraceMs ?? 1000)
      // A live response ends a few ticks after the abort (one last read, then
      // the write): close each connection as soon as it is idle.
      while (!isClosed && Date.now() < until) {
        server.closeIdleConnections()
        await Promise.race([closed, new Promise<void>((resolve) => setTimeout(resolve, 10))])
      }
      server.closeAllConnections()
      await closed
    }
    if (this.#options.ownsStore !== false) await this.#options.store.close()
  }
}

/** Every open SSE connection listens on the shutdown signal: no listener cap warning. */
function unlimited(ac: AbortController): AbortController {
  setMaxListeners(0, ac.signal)
  return ac
}
