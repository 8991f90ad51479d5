import { StreamBadRequestError, isOffset } from '../stores/types.js'
import type { CreateRequest, ProducerTuple } from './engine.js'
import type { HeaderSource } from './request.js'

/** URL prefix of every stream. @example `${url}${STREAM_PREFIX}flows/orders` */
export const STREAM_PREFIX = '/v1/stream/'

/** Header names of the protocol (lowercase, as Node delivers them). */
export const H = {
  nextOffset: 'Stream-Next-Offset',
  upToDate: 'Stream-Up-To-Date',
  cursor: 'Stream-Cursor',
  closed: 'Stream-Closed',
  ttl: 'Stream-TTL',
  expiresAt: 'Stream-Expires-At',
  seq: 'Stream-Seq',
  forkedFrom: 'Stream-Forked-From',
  forkOffset: 'Stream-Fork-Offset',
  forkSubOffset: 'Stream-Fork-Sub-Offset',
  sseEncoding: 'Stream-SSE-Data-Encoding',
  producerId: 'Producer-Id',
  producerEpoch: 'Producer-Epoch',
  producerSeq: 'Producer-Seq',
  producerExpectedSeq: 'Producer-Expected-Seq',
  producerReceivedSeq: 'Producer-Received-Seq',
} as const

const UINT = /^(0|[1-9]\d*)$/
const DIGITS = /^\d+$/
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/

/** Headers every response carries (browser hardening + CORS). */
export const BASE_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'cross-origin-resource-policy': 'cross-origin',
  'access-control-allow-origin': '*',
  'access-control-expose-headers': [
    H.nextOffset, H.upToDate, H.cursor, H.closed, H.ttl, H.expiresAt, H.sseEncoding,
    H.producerEpoch, H.producerSeq, H.producerExpectedSeq, H.producerReceivedSeq, 'ETag', 'Location', 'Content-Type',
  ].join(', '),
}

/** Answer to a CORS preflight: every header a client of the protocol sends. */
export const PREFLIGHT_HEADERS: Readonly<Record<string, string>> = {
  ...BASE_HEADERS,
  'access-control-allow-methods': 'GET, HEAD, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': [
    'Content-Type', 'If-None-Match', 'Authorization', H.closed, H.ttl, H.expiresAt, H.seq, H.forkedFrom, H.forkOffset,
    H.forkSubOffset, H.producerId, H.producerEpoch, H.producerSeq, 'Last-Event-ID', 'Cache-Control',
  ].join(', '),
  'access-control-max-age': '86400',
}

/**
 * Turns the URL path after `/v1/stream/` into a stream name. Refuses `..`
 * and `.` segments, NUL bytes, empty segments and malformed escapes, and
 * checks OnePipe's reserved namespaces (`flows/{name}`,
 * `channels/{name}/calls`, `signals/{name}`).
 */
export function streamName(rawPath: string): string {
  if (rawPath.length === 0) throw new StreamBadRequestError('STREAM_BAD_PATH', 'The stream path is empty; use /v1/stream/{name}.')
  let name: string
  try {
    name = decodeURIComponent(rawPath)
  } catch {
    throw new StreamBadRequestError('STREAM_BAD_PATH', 'The stream path has a malformed %-escape.')
  }
  const segments = name.split('/')
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || s.includes('\0')) {
      throw new StreamBadRequestError('STREAM_BAD_PATH', `Stream path "${rawPath}" has an empty, "." or ".." segment or a NUL byte; use plain names separated by "/".`)
    }
  }
  const ns = segments[0]
  if (ns === 'flows' || ns === 'signals') {
    if (segments.length !== 2 || !NAME.test(segments[1] ?? '')) {
      throw new StreamBadRequestError('STREAM_BAD_NAMESPACE', `Use /v1/stream/${ns}/{name} with a name of letters, digits, ".", "_", "-".`)
    }
  } else if (ns === 'channels') {
    if (segments.length !== 3 || segments[2] !== 'calls' || !NAME.test(segments[1] ?? '')) {
      throw new StreamBadRequestError('STREAM_BAD_NAMESPACE', 'Use /v1/stream/channels/{name}/calls with a name of letters, digits, ".", "_", "-".')
    }
  }
  return name
}

/** The stream name named by a `Stream-Forked-From` header (a path or full URL). */
export function forkSourceName(value: string): string {
  let path = value.trim()
  if (/^https?:\/\//i.test(path)) {
    try {
      path = new URL(path).pathname
    } catch {
      throw new StreamBadRequestError('STREAM_BAD_FORK_SOURCE', `Stream-Forked-From "${value}" is not a valid URL.`)
    }
  }
  if (path.startsWith(STREAM_PREFIX)) path = path.slice(STREAM_PREFIX.length)
  else if (path.startsWith('/')) throw new StreamBadRequestError('STREAM_BAD_FORK_SOURCE', `Stream-Forked-From must name a stream under ${STREAM_PREFIX}.`)
  return streamName(path)
}

function nonNegative(name: string, value: string, re = UINT): number {
  const v = value.trim()
  if (!re.test(v)) throw new StreamBadRequestError('STREAM_BAD_HEADER', `${name} must be a non-negative integer, got "${value}".`)
  const n = Number(v)
  if (!Number.isSafeInteger(n)) throw new StreamBadRequestError('STREAM_BAD_HEADER', `${name} is too large.`)
  return n
}

/** `Stream-Closed: true` (case-insensitive); anything else means open. */
export function wantsClose(headers: HeaderSource): boolean {
  return headers.get(H.closed)?.trim().toLowerCase() === 'true'
}

/** Producer-Id/Epoch/Seq: all three or none. */
export function producerOf(headers: HeaderSource): ProducerTuple | undefined {
  const id = headers.get(H.producerId)
  const epoch = headers.get(H.producerEpoch)
  const seq = headers.get(H.producerSeq)
  if (id === null && epoch === null && seq === null) return undefined
  if (id === null || epoch === null || seq === null) {
    throw new StreamBadRequestError('PRODUCER_HEADERS', 'Send Producer-Id, Producer-Epoch and Producer-Seq together.')
  }
  if (id.trim() === '') throw new StreamBadRequestError('PRODUCER_HEADERS', 'Producer-Id must not be empty.')
  return { id, epoch: nonNegative(H.producerEpoch, epoch, DIGITS), seq: nonNegative(H.producerSeq, seq, DIGITS) }
}

/** The Stream-Seq header, if any (compared as a plain string). */
export function streamSeqOf(headers: HeaderSource): string | undefined {
  const v = headers.get(H.seq)
  if (v === null) return undefined
  if (v === '') throw new StreamBadRequestError('STREAM_BAD_HEADER', 'Stream-Seq must not be empty.')
  return v
}

/** Everything a PUT says besides its body. */
export function createRequestOf(headers: HeaderSource, body: Uint8Array): CreateRequest {
  const ct = headers.get('content-type')
  const ttl = headers.get(H.ttl)
  const exp = headers.get(H.expiresAt)
  const req: CreateRequest = { closed: wantsClose(headers), body }
  if (ct !== null && ct.trim() !== '') req.contentType = ct.trim()
  if (ttl !== null) req.ttlSeconds = nonNegative(H.ttl, ttl)
  if (exp !== null) {
    const t = Date.parse(exp)
    if (!/^\d{4}-\d\d-\d\dT/.test(exp.trim()) || Number.isNaN(t)) {
      throw new StreamBadRequestError('STREAM_BAD_HEADER', `Stream-Expires-At must be an RFC 3339 timestamp, got "${exp}".`)
    }
    req.expiresAt = t
  }
  const from = headers.get(H.forkedFrom)
  const offset = headers.get(H.forkOffset)
  const sub = headers.get(H.forkSubOffset)
  if (from === null) {
    if (offset !== null || sub !== null) {
      throw new StreamBadRequestError('STREAM_FORK_HEADERS', 'Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From.')
    }
    return req
  }
  const fork: NonNullable<CreateRequest['fork']> = { source: forkSourceName(from) }
  if (offset !== null) {
    const o = offset.trim()
    if (o === '-1') fork.offset = '0000000000000000_0000000000000000'
    else if (isOffset(o)) fork.offset = o
    else throw new StreamBadRequestError('STREAM_INVALID_OFFSET', `Stream-Fork-Offset "${offset}" is not an offset.`)
  }
  if (sub !== null) {
    const n = nonNegative(H.forkSubOffset, sub, DIGITS)
    if (n > 0 && fork.offset === undefined) {
      throw new StreamBadRequestError('STREAM_FORK_HEADERS', 'Stream-Fork-Sub-Offset needs Stream-Fork-Offset to say which append it splits.')
    }
    if (n > 0) fork.subOffset = n
  }
  req.fork = fork
  return req
}

/**
 * The `offset` query parameter: `-1`, `now` or a well-formed offset. Absent
 * means `-1`; empty, repeated or malformed values are 400.
 */
export function offsetParam(url: URL, required: boolean): string {
  const all = url.searchParams.getAll('offset')
  if (all.length === 0) {
    if (required) throw new StreamBadRequestError('STREAM_OFFSET_REQUIRED', 'Live reads need ?offset= (-1, now or a Stream-Next-Offset value).')
    return '-1'
  }
  if (all.length > 1) throw new StreamBadRequestError('STREAM_INVALID_OFFSET', 'Send one offset parameter, not several.')
  const v = all[0] as string
  if (v === '-1' || v === 'now' || isOffset(v)) return v
  throw new StreamBadRequestError('STREAM_INVALID_OFFSET', `Offset "${v}" is malformed; use -1, now or a Stream-Next-Offset value.`)
}

/** Next Stream-Cursor: a 20 s time bucket, always above the one the client echoed. */
export function nextCursor(clientCursor: string | null): string {
  const bucket = Math.floor(Date.now() / 20_000)
  const echoed = clientCursor !== null && DIGITS.test(clientCursor) ? Number(clientCursor) : -1
  if (echoed >= bucket) return String(echoed + 1 + Math.floor(Math.random() * 3))
  return String(bucket)
}
