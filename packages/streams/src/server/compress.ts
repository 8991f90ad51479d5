import { Readable, pipeline, type Transform, type Writable } from 'node:stream'
import { constants, createBrotliCompress, createGzip } from 'node:zlib'
import { isTextType } from './records.js'

/** A content coding OnePipe compresses responses with. */
export type ContentCoding = 'br' | 'gzip'

/**
 * Bodies smaller than this many bytes are sent as they are: below about one
 * TCP segment, compressing saves no round trip and costs a zlib context.
 *
 * @example
 * ```ts
 * if (body.byteLength >= COMPRESS_THRESHOLD) coding = negotiateEncoding(req.headers['accept-encoding'])
 * ```
 */
export const COMPRESS_THRESHOLD = 1024

// An RFC 9110 qvalue: 0, 0.x, 0.xxx, 1, 1.0, 1.000.
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

/**
 * The content coding to send, from a request's `Accept-Encoding` (RFC 9110
 * §12.5.3): the acceptable coding with the highest q-value, `br` on a tie;
 * `*` stands for any coding not named; `q=0` (or a malformed q) refuses one.
 * `undefined` means identity: no header, nothing acceptable, or only
 * `identity`. A server is always allowed to answer identity, so
 * `identity;q=0` with nothing else acceptable also gets identity rather than
 * a 406.
 *
 * @example
 * ```ts
 * negotiateEncoding('gzip, deflate, br') // 'br'
 * negotiateEncoding('br;q=0.5, gzip')    // 'gzip'
 * negotiateEncoding('gzip;q=0')          // undefined
 * ```
 */
export function negotiateEncoding(acceptEncoding: string | null | undefined): ContentCoding | undefined {
  if (!acceptEncoding) return undefined
  let br: number | undefined
  let gzip: number | undefined
  let any: number | undefined
  for (const entry of acceptEncoding.split(',')) {
    const [name = '', ...params] = entry.split(';')
    const coding = name.trim().toLowerCase()
    if (coding === '') continue
    let q = 1
    for (const p of params) {
      const eq = p.indexOf('=')
      if (eq === -1 || p.slice(0, eq).trim().toLowerCase() !== 'q') continue
      const v = p.slice(eq + 1).trim()
      q = QVALUE.test(v) ? Number(v) : 0
    }
    // A coding named twice keeps its best q: the client accepted it at least that much.
    if (coding === 'br') br = Math.max(br ?? 0, q)
    else if (coding === 'gzip' || coding === 'x-gzip') gzip = Math.max(gzip ?? 0, q)
    else if (coding === '*') any = Math.max(any ?? 0, q)
  }
  const qBr = br ?? any ?? 0
  const qGzip = gzip ?? any ?? 0
  if (qBr <= 0 && qGzip <= 0) return undefined
  return qBr >= qGzip ? 'br' : 'gzip'
}

/**
 * Whether a body of this content type is worth compressing: text, JSON,
 * XML, JavaScript, NDJSON. Other types (octet-stream, images, archives) are
 * usually compressed already or unknown, so they go out as they are.
 *
 * @example
 * ```ts
 * isCompressibleType('application/json; charset=utf-8') // true
 * isCompressibleType('application/octet-stream')        // false
 * ```
 */
export function isCompressibleType(contentType: string): boolean {
  return isTextType(contentType)
}

/**
 * A fresh compressor for one response. Brotli runs at quality 4 and gzip at
 * zlib's default level 6: both compress a 1 MiB catch-up read in a few
 * milliseconds (higher brotli qualities gain a little and cost several
 * times the CPU). zlib streams run on libuv's thread pool, so compressing
 * never blocks the event loop.
 *
 * @example
 * ```ts
 * const z = compressor('gzip', body.byteLength)
 * pipeline(z, res, () => {})
 * z.end(body)
 * ```
 */
export function compressor(coding: ContentCoding, sizeHint: number): Transform {
  // 64 KiB output chunks: fewer socket writes than zlib's default 16 KiB.
  const chunkSize = 64 * 1024
  if (coding === 'gzip') return createGzip({ level: 6, chunkSize })
  return createBrotliCompress({
    chunkSize,
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 4,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_SIZE_HINT]: sizeHint,
    },
  })
}

/**
 * Writes `body` compressed into `out` (a ServerResponse), chunk by chunk as
 * zlib produces it, with the socket's backpressure; ends `out`. Resolves
 * once done or once the client went away (nothing left to answer then).
 */
export function writeCompressed(out: Writable, coding: ContentCoding, body: Uint8Array): Promise<void> {
  const z = compressor(coding, body.byteLength)
  return new Promise<void>((resolve) => {
    pipeline(z, out, () => resolve())
    z.end(body)
  })
}

/** `body` compressed, as a WHATWG stream (for Response bodies). */
export function compressedStream(coding: ContentCoding, body: Uint8Array): ReadableStream<Uint8Array> {
  const z = compressor(coding, body.byteLength)
  z.end(body)
  return Readable.toWeb(z) as ReadableStream<Uint8Array>
}
