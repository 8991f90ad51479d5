import type { IncomingMessage } from 'node:http'
import { Hono, type Context } from 'hono'
import { OnePipeError } from '@onepipe/core'
import {
  PayloadTooLargeError,
  ProducerFencedError,
  ProducerSequenceError,
  StreamBadRequestError,
  StreamClosedError,
  type StreamMeta,
} from '../stores/types.js'
import type { ReadOutcome, StreamEngine } from './engine.js'
import {
  BASE_HEADERS,
  H,
  PREFLIGHT_HEADERS,
  STREAM_PREFIX,
  createRequestOf,
  nextCursor,
  offsetParam,
  producerOf,
  streamName,
  streamSeqOf,
  wantsClose,
} from './headers.js'
import { isJsonType, isTextType, recordsToBody } from './records.js'
import { readOrWait, sseBody } from './live.js'

/** Limits and timings of the HTTP layer. */
export interface HttpOptions {
  longPollTimeoutMs: number
  sseLifetimeMs: number
  maxBodyBytes: number
  maxReadBytes: number
  /** Aborted when the server stops: ends every long-poll and SSE wait. */
  shutdown: () => AbortSignal
}

type Headers_ = Record<string, string>

const EMPTY = new Uint8Array(0)

function respond(status: number, headers: Headers_, body: ConstructorParameters<typeof Response>[0] = null): Response {
  return new Response(body, { status, headers: { ...BASE_HEADERS, ...headers } })
}

/** Maps any thrown value to the protocol's status + JSON error body. */
export function errorResponse(err: unknown): Response {
  if (!(err instanceof OnePipeError)) {
    const e = new OnePipeError('STREAM_INTERNAL', 'The streams server failed; see its log.', { status: 500 })
    return respond(500, { 'content-type': 'application/json' }, JSON.stringify(e.toJSON()))
  }
  const h: Headers_ = { 'content-type': 'application/json' }
  if (err instanceof StreamClosedError) {
    h[H.closed] = 'true'
    h[H.nextOffset] = err.nextOffset
  } else if (err instanceof ProducerFencedError) {
    h[H.producerEpoch] = String(err.currentEpoch)
  } else if (err instanceof ProducerSequenceError) {
    h[H.producerExpectedSeq] = String(err.expectedSeq)
    h[H.producerReceivedSeq] = String(err.receivedSeq)
  }
  return respond(err.status, h, JSON.stringify(err.toJSON()))
}

/** Reads a request body, refusing more than `max` bytes (413) without buffering past the limit. */
async function readBody(req: Request, max: number): Promise<Uint8Array> {
  const declared = req.headers.get('content-length')
  if (declared !== null) {
    const n = Number(declared)
    if (n > max) throw new PayloadTooLargeError(n, max)
    if (n === 0) return EMPTY
    return new Uint8Array(await req.arrayBuffer())
  }
  if (!req.body) return EMPTY
  const reader = (req.body as ReadableStream<Uint8Array>).getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > max) {
      await reader.cancel()
      throw new PayloadTooLargeError(total, max)
    }
    chunks.push(value)
  }
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks)
}

/** The raw (un-normalised) request path: `fetch`/`URL` resolve `..` away before we could refuse it. */
function rawPathOf(c: Context, url: URL): string {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
  const raw = incoming?.url
  if (raw && raw.startsWith('/')) {
    const q = raw.indexOf('?')
    return q === -1 ? raw : raw.slice(0, q)
  }
  return url.pathname
}

/** OnePipe's `limit` query parameter: the most appends one read returns. */
function limitOf(value: string): number {
  if (!/^[1-9]\d{0,6}$/.test(value)) throw new StreamBadRequestError('STREAM_BAD_LIMIT', `limit must be an integer from 1 to 9999999, got "${value}".`)
  return Number(value)
}

function metaHeaders(meta: StreamMeta): Headers_ {
  const h: Headers_ = { 'content-type': meta.contentType, [H.nextOffset]: meta.nextOffset }
  if (meta.closed) h[H.closed] = 'true'
  return h
}

function etagOf(meta: StreamMeta, from: string, r: ReadOutcome): string {
  return `"${meta.createdAt.toString(36)}.${from}.${r.next}${r.upToDate && meta.closed ? '.c' : ''}"`
}

/**
 * Builds the Hono app serving the protocol under `/v1/stream/*` and
 * `/health`. One handler per method, no middleware chain: every request
 * costs one route match.
 */
export function streamsApp(engine: StreamEngine, o: HttpOptions): Hono {
  const app = new Hono()
  const defaultLimits = { maxBytes: o.maxReadBytes }

  app.get('/health', () => respond(200, { 'content-type': 'application/json' }, JSON.stringify({ status: 'ok', store: engine.store.kind })))

  app.all(`${STREAM_PREFIX}*`, async (c) => {
    try {
      const url = new URL(c.req.url)
      const raw = rawPathOf(c, url)
      if (raw.includes('\0') || /%00/i.test(raw)) throw new StreamBadRequestError('STREAM_BAD_PATH', 'Stream paths must not contain NUL bytes.')
      if (!raw.startsWith(STREAM_PREFIX)) throw new StreamBadRequestError('STREAM_BAD_PATH', 'Stream paths must not contain "." or ".." segments.')
      const path = streamName(raw.slice(STREAM_PREFIX.length))
      switch (c.req.method) {
        case 'GET':
          return await get(c.req.raw, url, path)
        case 'POST':
          return await post(c.req.raw, path)
        case 'PUT':
          return await put(c.req.raw, url, path)
        case 'HEAD':
          return await head(path)
        case 'DELETE':
          await engine.delete(path)
          return respond(204, {})
        case 'OPTIONS':
          return respond(204, PREFLIGHT_HEADERS)
        default:
          return respond(405, { allow: 'GET, HEAD, POST, PUT, DELETE, OPTIONS', 'content-type': 'application/json' }, JSON.stringify({ error: { code: 'METHOD_NOT_ALLOWED', message: `${c.req.method} is not part of the streams protocol.` } }))
      }
    } catch (err) {
      return errorResponse(err)
    }
  })

  async function put(req: Request, url: URL, path: string): Promise<Response> {
    const body = await readBody(req, o.maxBodyBytes)
    const { created, meta } = await engine.create(path, createRequestOf(req.headers, body))
    const h = metaHeaders(meta)
    if (created) h.location = `${url.origin}${url.pathname}`
    return respond(created ? 201 : 200, h)
  }

  async function post(req: Request, path: string): Promise<Response> {
    const close = wantsClose(req.headers)
    const producer = producerOf(req.headers)
    const seq = streamSeqOf(req.headers)
    const body = await readBody(req, o.maxBodyBytes)
    const ct = req.headers.get('content-type')
    if (body.byteLength > 0 && (ct === null || ct.trim() === '')) {
      throw new StreamBadRequestError('STREAM_CONTENT_TYPE_REQUIRED', 'POST with a body needs a Content-Type matching the stream.')
    }
    const r = await engine.append(path, {
      body,
      close,
      ...(ct !== null && ct.trim() !== '' ? { contentType: ct } : {}),
      ...(seq !== undefined ? { seq } : {}),
      ...(producer ? { producer } : {}),
    })
    const h: Headers_ = { [H.nextOffset]: r.nextOffset }
    if (r.meta.closed) h[H.closed] = 'true'
    if (r.producer) {
      h[H.producerEpoch] = String(r.producer.epoch)
      h[H.producerSeq] = String(r.producer.seq)
    }
    return respond(producer && !r.duplicate && body.byteLength > 0 ? 200 : 204, h)
  }

  async function head(path: string): Promise<Response> {
    const meta = await engine.head(path)
    const h = metaHeaders(meta)
    h['cache-control'] = 'no-store'
    if (meta.ttlSeconds !== undefined) h[H.ttl] = String(meta.ttlSeconds)
    if (meta.expiresAt !== undefined) h[H.expiresAt] = new Date(meta.expiresAt).toISOString()
    return respond(200, h)
  }

  async function get(req: Request, url: URL, path: string): Promise<Response> {
    const live = url.searchParams.get('live')
    if (live !== null && live !== 'long-poll' && live !== 'sse') {
      throw new StreamBadRequestError('STREAM_BAD_LIVE', `live=${live} is unknown; use live=long-poll or live=sse.`)
    }
    const from = offsetParam(url, live !== null)
    const limitParam = url.searchParams.get('limit')
    const limits = limitParam === null ? defaultLimits : { maxBytes: o.maxReadBytes, maxRecords: limitOf(limitParam) }
    const cursor = () => nextCursor(url.searchParams.get('cursor'))
    if (live === 'sse') {
      // Resolve the stream first so a missing one is a plain 404.
      const meta = await engine.head(path)
      const h: Headers_ = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' }
      if (!isTextType(meta.contentType)) h[H.sseEncoding] = 'base64'
      return respond(200, h, sseBody({ engine, path, from, contentType: meta.contentType, limits, lifetimeMs: o.sseLifetimeMs, cursor, shutdown: o.shutdown() }))
    }
    const r =
      live === 'long-poll'
        ? await readOrWait(engine, path, from, limits, o.longPollTimeoutMs, AbortSignal.any([req.signal, o.shutdown()]))
        : await engine.read(path, from, limits)
    const meta = r.meta
    const h = metaHeaders(meta)
    h[H.nextOffset] = r.next
    if (!(r.upToDate && meta.closed)) delete h[H.closed]
    if (r.upToDate) h[H.upToDate] = 'true'
    if (live === 'long-poll') {
      h[H.cursor] = cursor()
      if (r.records.length === 0) {
        h['cache-control'] = 'no-store'
        return respond(204, h)
      }
    }
    const etag = etagOf(meta, from, r)
    h.etag = etag
    // Reads at `now` or the tail change with the next append: never cache them.
    h['cache-control'] = from === 'now' ? 'no-store' : r.upToDate ? 'no-cache' : 'public, max-age=60, stale-while-revalidate=300'
    if (req.headers.get('if-none-match') === etag) return respond(304, h)
    const body = recordsToBody(r.records, isJsonType(meta.contentType))
    return respond(200, h, body.byteLength === 0 ? null : body)
  }

  // A raw `/v1/stream/../x` was normalised out of the stream prefix before
  // routing; it still has to be refused as a bad path, not a missing route.
  app.notFound((c) => {
    const raw = rawPathOf(c, new URL(c.req.url))
    if (raw.startsWith(STREAM_PREFIX)) {
      return errorResponse(new StreamBadRequestError('STREAM_BAD_PATH', 'Stream paths must not contain "." or ".." segments.'))
    }
    return respond(404, { 'content-type': 'application/json' }, JSON.stringify({ error: { code: 'NOT_FOUND', message: `No route ${c.req.method} ${new URL(c.req.url).pathname}; streams live under ${STREAM_PREFIX}.` } }))
  })

  return app
}
