import { resolve } from 'node:path'
import { getManifest, type Component, type Logger } from '@onepipe/core'
import { UnbrokenServer, createStore } from '@onepipe/streams'

/** How `serve()` embeds the streams server. */
export interface EmbeddedStreamsOptions {
  /** Port (default `ONEPIPE_STREAMS_PORT` or 9999; 0 picks a free one). */
  port?: number
  /** Store kind (default `file`). */
  store?: string
  /** Folder of the file store (default `.onepipe/streams`). */
  dir?: string
}

/** Whether any component keeps its data in the streams server (per the manifest). */
export function needsStreams(components: Component[]): boolean {
  const entries = getManifest().primitives
  return components.some((c) => entries.some((e) => e.primitive === c.kind && e.name === c.name && e.infrastructure.includes('streams')))
}

/**
 * Starts the Unbroken streams server in this process when the app has
 * streams-backed primitives and `ONEPIPE_STREAMS_URL` is unset, and points
 * `ONEPIPE_STREAMS_URL` at it so every client in the process finds it. With
 * the variable set, nothing is started: the app uses that server.
 */
export async function embedStreams(options: EmbeddedStreamsOptions, logger: Logger): Promise<{ url: string; stop(): Promise<void> } | undefined> {
  if (process.env.ONEPIPE_STREAMS_URL) return undefined
  const kind = options.store ?? 'file'
  const store = await createStore(kind, { dir: options.dir ?? resolve(process.env.ONEPIPE_DATA_DIR ?? '.onepipe', 'streams') })
  const server = new UnbrokenServer({ store, port: options.port ?? Number(process.env.ONEPIPE_STREAMS_PORT ?? 9999), host: '127.0.0.1' })
  const { url } = await server.start()
  process.env.ONEPIPE_STREAMS_URL = url
  logger.info({ url, store: kind }, 'embedded streams server listening')
  return {
    url,
    async stop() {
      await server.stop()
      if (process.env.ONEPIPE_STREAMS_URL === url) delete process.env.ONEPIPE_STREAMS_URL
    },
  }
}
