import type { IncomingMessage, ServerResponse } from 'node:http'
import { Hono, type Context } from 'hono'
import {
  StreamBadRequestError,
  type StreamMeta,
} from '../stores/types.js'
import type { ReadOutcome, StreamEngine } from './engine.js'
import {
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
import { bodyLength, isJsonType, isTextType, recordsToBody } from './records.js'
import { COMPRESS_THRESHOLD, compressedStream, isCompressibleType, negotiateEncoding, writeCompressed } from './compress.js'
import { SseSession, readOrWait, sseStream } from './live.js'
import { StreamRequest } from './request.js'
import { errorReply, respond, type Reply } from './reply.js'
import type { Subscriptions } from './subscriptions.js'

export type { Reply } from './reply.js'

/** Limits and timings of the HTTP layer. */
export interface HttpOptions {
  longPollTimeoutMs: number
  sseLifetimeMs: number
  maxBodyBytes: number
  maxReadBytes: number
  /** Compress large text reads when the client accepts br or gzip. */
  compression: boolean
  /** Aborted when the server stops: ends every long-poll and SSE wait. */
  shutdown: () => AbortSignal
  /** The reserved `__ds/` subscription API; absent = those paths are 404. */
  subscriptions?: Subscriptions
}

const RESERVED_PREFIX = `${STREAM_PREFIX}__ds/`

type Headers_ = Record<string, string>

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

const ENTITY_TAG = /(?:W\/)?("[^"]*")/g

/**
 * If-None-Match against the read's tag, with the weak comparison RFC 9110
 * §13.1.2 prescribes for it: `W/"x"` and `"x"` match, so a client holding
 * the identity body and one holding the compressed body (weak tag) both get
 * their 304. A list matches when any member does; `*` matches any range.
 */
function noneMatch(header: string | null, etag: string): boolean {
  if (header === null) return false
  if (header.trim() === '*') return true
  for (const m of header.matchAll(ENTITY_TAG)) if (m[1] === etag) return true
  return false
}

/**
 * The protocol handler: `/v1/stream/*` and `/health`, one function per
 * method, no middleware chain.
 */
export function streamsHandler(engine: StreamEngine, o: HttpOptions): (req: StreamRequest) => Promise<Reply> {
  const defaultLimits = { maxBytes: o.maxReadBytes }

  return async function handle(req: StreamRequest): Promise<Reply> {
    try {
      const raw = req.rawPath
      if (!raw.startsWith(STREAM_PREFIX)) {
        if (raw === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
          return respond(200, { 'content-type': 'application/json' }, JSON.stringify({ status: 'ok', store: engine.store.kind }))
        }
        return respond(404, { 'content-type': 'application/json' }, JSON.stringify({ error: { code: 'NOT_FOUND', message: `No route ${req.method} ${req.url.pathname}; streams live under ${STREAM_PREFIX}.` } }))
      }
      if (raw.includes('\0') || /%00/i.test(raw)) throw new StreamBadRequestError('STREAM_BAD_PATH', 'Stream paths must not contain NUL bytes.')
      if (raw.startsWith(RESERVED_PREFIX)) {
        const segments = raw.slice(RESERVED_PREFIX.length).split('/').map((x) => decodeURIComponent(x))
        if (!o.subscriptions) return respond(404, { 'content-type': 'application/json' }, JSON.stringify({ error: { code: 'NOT_FOUND', message: 'Subscriptions are turned off on this server.' } }))
        return await o.subscriptions.handle(req, segments, () => req.body(o.maxBodyBytes))
      }
      const path = streamName(raw.slice(STREAM_PREFIX.length))
      switch (req.method) {
        case 'GET':
          return await get(req, path)
        case 'POST':
          return await post(req, path)
        case 'PUT':
          return await put(req, path)
        case 'HEAD':
          return await head(path)
        case 'DELETE':
          await engine.delete(path)
          o.subscriptions?.onDelete(path)
          return respond(204, {})
        case 'OPTIONS':
          return respond(204, PREFLIGHT_HEADERS)
        default:
          return respond(405, { allow: 'GET, HEAD, POST, PUT, DELETE, OPTIONS', 'content-type': 'application/json' }, JSON.stringify({ error: { code: 'METHOD_NOT_ALLOWED', message: `${req.method} is not part of the streams protocol.` } }))
      }
    } catch (err) {
      return errorReply(err)
    }
  }

  async function put(req: StreamRequest, path: string): Promise<Reply> {
    const body = await req.body(o.maxBodyBytes)
    const { created, meta } = await engine.create(path, createRequestOf(req.headers, body))
    const h = metaHeaders(meta)
    if (created) h.location = `${req.url.origin}${req.url.pathname}`
    if (created && body.byteLength > 0) o.subscriptions?.onAppend(path, meta.nextOffset)
    return respond(created ? 201 : 200, h)
  }

  async function post(req: StreamRequest, path: string): Promise<Reply> {
    const close = wantsClose(req.headers)
    const producer = producerOf(req.headers)
    const seq = streamSeqOf(req.headers)
    const body = await req.body(o.maxBodyBytes)
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
    if (!r.duplicate && body.byteLength > 0) o.subscriptions?.onAppend(path, r.nextOffset)
    if (r.producer) {
      h[H.producerEpoch] = String(r.producer.epoch)
      h[H.producerSeq] = String(r.producer.seq)
    }
    return respond(producer && !r.duplicate && body.byteLength > 0 ? 200 : 204, h)
  }

  async function head(path: string): Promise<Reply> {
    const meta = await engine.head(path)
    const h = metaHeaders(meta)
    h['cache-control'] = 'no-store'
    if (meta.ttlSeconds !== undefined) h[H.ttl] = String(meta.ttlSeconds)
    if (meta.expiresAt !== undefined) h[H.expiresAt] = new Date(meta.expiresAt).toISOString()
    return respond(200, h)
  }

  async function get(req: StreamRequest, path: string): Promise<Reply> {
    const url = req.url
    const live = url.searchParams.get('live')
    if (live !== null && live !== 'long-poll' && live !== 'sse') {
      throw new StreamBadRequestError('STREAM_BAD_LIVE', `live=${live} is unknown; use live=long-poll or live=sse.`)
    }
    const from = offsetParam(url, live !== null)
    const limitParam = url.searchParams.get('limit')
    const limits = limitParam === null ? defaultLimits : { maxBytes: o.maxReadBytes, maxRecords: limitOf(limitParam) }
    const cursor = () => nextCursor(url.searchParams.get('cursor'))
    if (live === 'sse') {
      // Resolve the stream first so a missing one is a plain 404. Never
      // compressed, whatever Accept-Encoding says: a compressor holds bytes
      // back until it fills a block, so every event would need a sync flush
      // (losing most of the gain on small events), and proxies that see
      // Content-Encoding on an event stream tend to buffer it whole.
      const meta = await engine.head(path)
      const h: Headers_ = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' }
      if (!isTextType(meta.contentType)) h[H.sseEncoding] = 'base64'
      return respond(200, h, new SseSession({ engine, path, from, contentType: meta.contentType, limits, lifetimeMs: o.sseLifetimeMs, cursor, shutdown: o.shutdown() }))
    }
    const r =
      live === 'long-poll'
        ? await readOrWait(engine, path, from, limits, o.longPollTimeoutMs, AbortSignal.any([req.signal(), o.shutdown()]))
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
    const json = isJsonType(meta.contentType)
    const compressible = o.compression && isCompressibleType(meta.contentType)
    const coding = compressible && bodyLength(r.records, json) >= COMPRESS_THRESHOLD ? negotiateEncoding(req.headers.get('accept-encoding')) : undefined
    // Any read of a compressible type may come back compressed once it grows
    // past the threshold, so caches must key all of them on Accept-Encoding.
    if (compressible) h.vary = 'Accept-Encoding'
    const etag = etagOf(meta, from, r)
    // The compressed bytes are another representation of the same range: a
    // strong tag must not name both, a weak one says "same content".
    h.etag = coding ? `W/${etag}` : etag
    // Reads at `now` or the tail change with the next append: never cache them.
    h['cache-control'] = from === 'now' ? 'no-store' : r.upToDate ? 'no-cache' : 'public, max-age=60, stale-while-revalidate=300'
    // No Content-Encoding on a 304: a cache would copy it onto the stored (maybe identity) body.
    if (noneMatch(req.headers.get('if-none-match'), etag)) return respond(304, h)
    const body = recordsToBody(r.records, json)
    if (!coding) return respond(200, h, body)
    h['content-encoding'] = coding
    return { ...respond(200, h, body), encoding: coding }
  }

}

/** Turns a Reply into a WHATWG Response (in-process `app.request()`, embedding in another Hono app). */
function toResponse(r: Reply): Response {
  const noBody = r.status === 204 || r.status === 304
  const body = r.body instanceof SseSession ? sseStream(r.body) : r.encoding ? compressedStream(r.encoding, bytesOf(r.body)) : r.body
  return new Response(noBody ? null : body, { status: r.status, headers: r.headers })
}

function bytesOf(body: string | Uint8Array): Uint8Array {
  return typeof body === 'string' ? Buffer.from(body) : body
}

/**
 * The Hono app serving the protocol, for `app.request()` tests and for
 * mounting into another Hono app.
 */
export function streamsApp(handle: (req: StreamRequest) => Promise<Reply>): Hono {
  const app = new Hono()
  const route = async (c: Context) => toResponse(await handle(StreamRequest.fromHono(c)))
  app.all('/health', route)
  app.all(`${STREAM_PREFIX}*`, route)
  app.notFound(route)
  return app
}

/**
 * A Node `request` listener running the handler straight on
 * IncomingMessage/ServerResponse: no WHATWG Request/Response per call.
 * Streamed bodies (SSE) are written with socket backpressure: the next chunk
 * is pulled only after the previous one drained. Once `shutdown` aborted,
 * replies close their connection so no client reuses it.
 */
export function nodeListener(handle: (req: StreamRequest) => Promise<Reply>, shutdown?: () => AbortSignal): (req: IncomingMessage, res: ServerResponse) => void {
  return (incoming, res) => {
    const write = (r: Reply) => {
      if (shutdown?.().aborted) r.headers.connection = 'close'
      return writeReply(res, r)
    }
    handle(StreamRequest.fromNode(incoming, res)).then(
      (r) => write(r),
      (err: unknown) => write(errorReply(err)),
    ).catch((err: unknown) => {
      console.error('[onepipe streams] failed to write a response', err)
      res.destroy()
    })
  }
}

async function writeReply(res: ServerResponse, r: Reply): Promise<void> {
  const body = r.body
  if (res.destroyed) {
    // The client left (e.g. during a long-poll): nothing to answer, but a live session must end.
    if (body instanceof SseSession) body.cancel()
    return
  }
  if (!(body instanceof SseSession)) {
    if (r.encoding && r.status !== 204 && r.status !== 304) {
      // Chunked: the compressed length is known only once zlib is done, and
      // the first chunks are on the wire by then.
      res.writeHead(r.status, r.headers)
      await writeCompressed(res, r.encoding, bytesOf(body))
      return
    }
    if (r.status !== 204 && r.status !== 304) r.headers['content-length'] = String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength)
    res.writeHead(r.status, r.headers)
    res.end(body)
    return
  }
  res.writeHead(r.status, r.headers)
  res.flushHeaders()
  const onClose = () => body.cancel()
  res.once('close', onClose)
  try {
    for (;;) {
      const frame = await body.next()
      if (frame === undefined || res.destroyed) break
      if (!res.write(frame)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            res.off('drain', go)
            res.off('close', go)
            resolve()
          }
          res.once('drain', go)
          res.once('close', go)
        })
      }
    }
  } finally {
    res.off('close', onClose)
    body.cancel()
    if (!res.destroyed) res.end()
  }
}
