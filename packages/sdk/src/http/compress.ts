import { Readable } from 'node:stream'
import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { COMPRESS_THRESHOLD, compressor, negotiateEncoding } from '@onepipe/streams'
import { headerOf } from './headers.js'

/**
 * `value` as a JSON response, compressed with br or gzip when the request's
 * `Accept-Encoding` allows it (q-values honoured, br preferred on a tie) and
 * the JSON is at least 1 KiB; otherwise exactly what `c.json()` sends. The
 * body streams through zlib as it is compressed, and always carries
 * `Vary: Accept-Encoding` so a cache keeps the two forms apart. The same
 * negotiation and settings as the streams server's catch-up reads.
 *
 * Not for SSE: a compressor holds events back until it fills a block.
 * (Hono's `compress()` middleware is not used: it has no brotli on Node 20
 * and skips its threshold whenever the response has no Content-Length,
 * which is every `c.json()`.)
 *
 * @example
 * ```ts
 * app.get('/orders', async (c) => compressedJson(c, { orders: await db.orders() }))
 * ```
 */
export function compressedJson(c: Context, value: unknown, status: ContentfulStatusCode = 200): Response {
  const text = JSON.stringify(value)
  const size = Buffer.byteLength(text)
  c.header('vary', 'Accept-Encoding', { append: true })
  const coding = c.req.method !== 'HEAD' && size >= COMPRESS_THRESHOLD ? negotiateEncoding(headerOf(c, 'accept-encoding')) : undefined
  if (!coding) return c.body(text, status, { 'content-type': 'application/json' })
  const z = compressor(coding, size)
  z.end(text)
  return c.body(Readable.toWeb(z) as ReadableStream, status, { 'content-type': 'application/json', 'content-encoding': coding })
}
