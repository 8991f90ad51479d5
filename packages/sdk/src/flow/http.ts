import { ValidationError, type Logger } from '@onepipe/core'
import type { Hono } from 'hono'
import type { Flow } from './flow.js'
import { DEFAULT_MAX_BODY_BYTES, compressedJson, intParam, readJson, respondError, sseResponse } from '../http/index.js'

/**
 * The flow's HTTP surface for the app's own clients:
 * `GET|POST /__onepipe/flows/{name}/events` and `GET …/stream` (SSE, `id:` is
 * the offset; `Last-Event-ID` or `?offset=` resumes after it; otherwise the
 * stream starts at the head). Streams end when `shutdown` aborts. A page of
 * events of 1 KiB or more goes out br- or gzip-compressed when the client
 * accepts it; the SSE stream never does (see `compressedJson`).
 */
export function mountFlowRoutes(app: Hono, flow: Flow<unknown>, logger: Logger, shutdown?: AbortSignal): void {
  const base = `/__onepipe/flows/${flow.name}`
  app.get(`${base}/events`, async (c) => {
    try {
      const offset = intParam(c, 'offset')
      const tail = intParam(c, 'tail')
      const limit = intParam(c, 'limit')
      const events = await flow.read({ ...(offset !== undefined ? { offset } : {}), ...(tail !== undefined ? { tail } : {}), ...(limit !== undefined ? { limit } : {}) })
      return compressedJson(c, { events, nextOffset: events.at(-1)?.offset ?? offset ?? 0 })
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
  app.post(`${base}/events`, async (c) => {
    try {
      return c.json(await flow.append(await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES })), 201)
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
  app.get(`${base}/stream`, async (c) => {
    try {
      const lastId = c.req.header('last-event-id')
      if (lastId !== undefined && !/^\d+$/.test(lastId)) throw new ValidationError('Last-Event-ID', [{ path: 'Last-Event-ID', message: 'must be an offset (a non-negative integer)' }])
      const from = lastId !== undefined ? Number(lastId) : (intParam(c, 'offset') ?? (await flow.head()))
      const ac = new AbortController()
      const it = flow.stream({ live: true, offset: from, signal: ac.signal })[Symbol.asyncIterator]()
      return sseResponse(
        async () => {
          const r = await it.next()
          return r.done ? undefined : { id: String(r.value.offset), data: JSON.stringify(r.value) }
        },
        { onClose: () => ac.abort(), ...(shutdown ? { signal: shutdown } : {}) },
      )
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
}
