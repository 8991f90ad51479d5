import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Context } from 'hono'
import { PayloadTooLargeError } from '../stores/types.js'

/** Read access to request headers, whatever carries them. */
export interface HeaderSource {
  get(name: string): string | null
}

const EMPTY = new Uint8Array(0)

/**
 * One protocol request. Under `@hono/node-server` it reads headers, body and
 * disconnects straight from Node's IncomingMessage: building a WHATWG
 * Request (body stream, AbortController, Headers) per append costs more than
 * the append itself. In process (`app.request()`) it falls back to the
 * Request.
 */
export class StreamRequest {
  readonly method: string
  readonly url: URL
  /** The path as sent, before URL normalisation could resolve `..` away. */
  readonly rawPath: string
  readonly headers: HeaderSource
  readonly #incoming: IncomingMessage | undefined
  readonly #outgoing: ServerResponse | undefined
  readonly #request: Request | undefined

  private constructor(method: string, url: URL, rawPath: string, headers: HeaderSource, incoming?: IncomingMessage, outgoing?: ServerResponse, request?: Request) {
    this.method = method
    this.url = url
    this.rawPath = rawPath
    this.headers = headers
    this.#incoming = incoming
    this.#outgoing = outgoing
    this.#request = request
  }

  /** From Node's request/response pair (the standalone server). */
  static fromNode(incoming: IncomingMessage, outgoing: ServerResponse): StreamRequest {
    const raw = incoming.url ?? '/'
    const q = raw.indexOf('?')
    const host = incoming.headers.host ?? 'localhost'
    const url = new URL(raw.startsWith('/') ? `http://${host}${raw}` : raw)
    const headers: HeaderSource = {
      get(name: string): string | null {
        const v = incoming.headers[name.toLowerCase()]
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v
      },
    }
    const rawPath = raw.startsWith('/') ? (q === -1 ? raw : raw.slice(0, q)) : url.pathname
    return new StreamRequest(incoming.method ?? 'GET', url, rawPath, headers, incoming, outgoing)
  }

  /** From a Hono context (in-process `app.request()`, or mounted in another Hono app). */
  static fromHono(c: Context): StreamRequest {
    const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined
    if (env?.incoming && env.outgoing) return StreamRequest.fromNode(env.incoming, env.outgoing)
    const url = new URL(c.req.url)
    return new StreamRequest(c.req.method, url, url.pathname, c.req.raw.headers, undefined, undefined, c.req.raw)
  }

  /** Aborts when the client goes away (or the response is finished). */
  signal(): AbortSignal {
    const out = this.#outgoing
    if (!out) return (this.#request as Request).signal
    const ac = new AbortController()
    if (out.writableEnded || out.destroyed) ac.abort()
    else out.once('close', () => ac.abort())
    return ac.signal
  }

  /** The body, refusing more than `max` bytes with 413 without buffering past the limit. */
  body(max: number): Promise<Uint8Array> {
    const declared = this.headers.get('content-length')
    if (declared !== null) {
      const n = Number(declared)
      if (n > max) return Promise.reject(new PayloadTooLargeError(n, max))
      if (n === 0) return Promise.resolve(EMPTY)
    }
    const incoming = this.#incoming
    if (incoming) return readIncoming(incoming, max)
    return readStream(this.#request as Request, max)
  }
}

function readIncoming(incoming: IncomingMessage, max: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength
      if (total > max) {
        cleanup()
        // Let Node discard the rest of the body; the 413 goes out meanwhile.
        incoming.resume()
        reject(new PayloadTooLargeError(total, max))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resolve(chunks.length === 0 ? EMPTY : chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total))
    }
    const onError = (err: Error) => {
      cleanup()
      reject(err)
    }
    const cleanup = () => {
      incoming.off('data', onData)
      incoming.off('end', onEnd)
      incoming.off('error', onError)
    }
    incoming.on('data', onData)
    incoming.on('end', onEnd)
    incoming.on('error', onError)
  })
}

async function readStream(req: Request, max: number): Promise<Uint8Array> {
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
  return chunks.length === 0 ? EMPTY : chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks)
}
