import { OnePipeError, ValidationError } from '@onepipe/core'
import type { Context, Hono } from 'hono'
import type { Flow } from './flow.js'
import { sseResponse } from './sse.js'

/** Answers an error as `{ error: { code, message, details? } }` with its status. */
export function errorJson(e: unknown): Response {
  const err = e instanceof OnePipeError ? e : new OnePipeError('INTERNAL', 'Internal error', { status: 500 })
  return new Response(JSON.stringify(err.toJSON()), { status: err.status, headers: { 'content-type': 'application/json; charset=utf-8' } })
}

/** Reads an optional non-negative integer query parameter, or throws a ValidationError naming it. */
export function intParam(c: Context, name: string): number | undefined {
  const raw = c.req.query(name)
  if (raw === undefined || raw === '') return undefined
  if (!/^\d+$/.test(raw)) throw new ValidationError('query', [{ path: name, message: `must be a non-negative integer, got "${raw}"` }])
  return Number(raw)
}

/** Reads the JSON body, or throws a ValidationError saying to send JSON. */
export async function jsonBody(c: Context): Promise<unknown> {
  try {
    return await c.req.json()
  } catch {
    throw new ValidationError('request body', [{ path: '', message: 'must be JSON (Content-Type: application/json)' }])
  }
}

/**
 * The flow's HTTP surface for the app's own clients:
 * `GET|POST /__onepipe/flows/{name}/events` and `GET …/stream` (SSE, `id:` is
 * the offset; `Last-Event-ID` or `?offset=` resumes after it; otherwise the
 * stream starts at the head).
 */
export function mountFlowRoutes(app: Hono, flow: Flow<unknown>): void {
  const base = `/__onepipe/flows/${flow.name}`
  app.get(`${base}/events`, async (c) => {
    try {
      const offset = intParam(c, 'offset')
      const tail = intParam(c, 'tail')
      const limit = intParam(c, 'limit')
      const events = await flow.read({ ...(offset !== undefined ? { offset } : {}), ...(tail !== undefined ? { tail } : {}), ...(limit !== undefined ? { limit } : {}) })
      return c.json({ events, nextOffset: events.at(-1)?.offset ?? offset ?? 0 })
    } catch (e) {
      return errorJson(e)
    }
  })
  app.post(`${base}/events`, async (c) => {
    try {
      return c.json(await flow.append(await jsonBody(c)), 201)
    } catch (e) {
      return errorJson(e)
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
        { onClose: () => ac.abort() },
      )
    } catch (e) {
      return errorJson(e)
    }
  })
}
