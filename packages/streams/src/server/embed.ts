import { createStore, type StoreOptions } from '../stores/index.js'
import { UnbrokenServer, type UnbrokenServerOptions } from './index.js'

/** Options of {@link embedStreams}. */
export interface EmbedStreamsOptions extends StoreOptions, Omit<UnbrokenServerOptions, 'store' | 'port'> {
  /** Store kind for the embedded server. Default `file`. */
  store?: string
  /** Port when embedding. Default `ONEPIPE_STREAMS_PORT`, else 9999. */
  port?: number
  /** Environment to read (tests). Default `process.env`. */
  env?: Record<string, string | undefined>
}

/** Where an app's streams live, and how to let go of them. */
export interface EmbeddedStreams {
  /** Base URL clients use (`ONEPIPE_STREAMS_URL` or the embedded server's). */
  url: string
  /** The embedded server, when one was started. */
  server: UnbrokenServer | undefined
  /** Stops the embedded server (no-op for an external one). */
  stop(): Promise<void>
}

/**
 * The one rule for where streams live: with `ONEPIPE_STREAMS_URL` set,
 * nothing is started and that URL is used; otherwise an Unbroken server is
 * started in process on `ONEPIPE_STREAMS_PORT` (default 9999) with the file
 * store in `.onepipe/streams`.
 *
 * @example
 * ```ts
 * const streams = await embedStreams()
 * const client = new StreamsClient({ url: streams.url })
 * // … on shutdown
 * await streams.stop()
 * ```
 */
export async function embedStreams(options: EmbedStreamsOptions = {}): Promise<EmbeddedStreams> {
  const env = options.env ?? process.env
  const external = env.ONEPIPE_STREAMS_URL
  if (external) return { url: external.replace(/\/+$/, ''), server: undefined, stop: () => Promise.resolve() }
  const { store: kind = 'file', dir = '.onepipe/streams', redisUrl, databaseUrl, env: _env, port, ...serverOptions } = options
  const store = await createStore(kind, { dir, ...(redisUrl ? { redisUrl } : {}), ...(databaseUrl ? { databaseUrl } : {}) })
  const server = new UnbrokenServer({ ...serverOptions, store, port: port ?? Number(env.ONEPIPE_STREAMS_PORT ?? 9999) })
  try {
    const { url } = await server.start()
    return { url, server, stop: () => server.stop() }
  } catch (err) {
    await store.close()
    throw err
  }
}
