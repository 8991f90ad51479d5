import type { Hono } from 'hono'
import type { Logger } from '@onepipe/core'
import { DEFAULT_MAX_BODY_BYTES, readJson, respondError, sseResponse } from '../http/index.js'
import { mergeObject, type Signal } from './signal.js'

/**
 * The signal's HTTP surface for the app's own clients:
 * `GET|PUT|PATCH /__onepipe/signals/{name}` answer `{ value, version }`;
 * `GET …/stream` is SSE with the current value first, then each change
 * (`id:` is the version). A client that reads slowly gets the latest value
 * when it catches up, never a backlog: only one value is held for it.
 * Streams end when `shutdown` aborts.
 */
export function mountSignalRoutes(app: Hono, signal: Signal<unknown>, logger: Logger, shutdown?: AbortSignal): void {
  const path = `/__onepipe/signals/${signal.name}`
  app.get(path, async (c) => {
    try {
      return Response.json(await signal.read())
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
  app.put(path, async (c) => {
    try {
      return Response.json(await signal.write(await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES })))
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
  app.patch(path, async (c) => {
    try {
      const partial = await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES })
      return Response.json(await signal.change((v) => mergeObject(signal.name, v, partial)))
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
  app.get(`${path}/stream`, async (c) => {
    try {
      let latest = await signal.read()
      let sent = -1
      let wake: (() => void) | undefined
      let closed = false
      const stop = signal.subscribe((value, version) => {
        if (version <= latest.version) return
        latest = { value, version }
        wake?.()
      })
      await stop.ready
      // A change between the first read and the subscription would be missed otherwise.
      const now = await signal.read()
      if (now.version > latest.version) latest = now
      return sseResponse(
        async () => {
          while (latest.version === sent && !closed) await new Promise<void>((r) => (wake = r))
          if (closed) return undefined
          sent = latest.version
          return { id: String(latest.version), data: JSON.stringify(latest) }
        },
        {
          onClose: () => {
            closed = true
            wake?.()
            void stop()
          },
          ...(shutdown ? { signal: shutdown } : {}),
        },
      )
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
}
