import { MAX_VALUE_BYTES, PayloadTooLargeError, ValidationError } from '@onepipe/core'
import type { Context } from 'hono'
import { APIError } from './api-error.js'
import { headerOf } from './headers.js'

/**
 * The body limit of OnePipe's own routes (`/rpc/*`, `/__onepipe/*`): one
 * value of {@link MAX_VALUE_BYTES} (1 MiB) plus 16 KiB for the envelope
 * around it (`{ "input": … }`). A larger body is a 413 before it is read
 * whole; a value over 1 MiB inside a smaller body is a 413 too.
 */
export const DEFAULT_MAX_BODY_BYTES = MAX_VALUE_BYTES + 16 * 1024

/**
 * Reads the request body as text, refusing more than `maxBytes` with a
 * {@link PayloadTooLargeError} (413): a declared `Content-Length` is checked
 * before reading, a chunked body is counted while it streams and the read
 * stops at the limit, so an oversized body is never buffered whole.
 *
 * @example
 * ```ts
 * const text = await readBodyText(c, 64 * 1024)
 * ```
 */
export async function readBodyText(c: Context, maxBytes: number): Promise<string> {
  const declared = headerOf(c, 'content-length')
  if (declared !== undefined && Number(declared) > maxBytes) throw new PayloadTooLargeError('request body', maxBytes, Number(declared))
  const body = c.req.raw.body
  if (!body) return ''
  const reader = (body as ReadableStream<Uint8Array>).getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined)
      throw new PayloadTooLargeError('request body', maxBytes)
    }
    chunks.push(value)
  }
  return utf8(Buffer.concat(chunks, size))
}

const decoder = new TextDecoder('utf-8', { fatal: true })

/** Bytes as UTF-8 text; bytes that are not UTF-8 are a 400, never silently turned into U+FFFD. */
function utf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes)
  } catch {
    throw new APIError('BAD_REQUEST', 'The request body is not valid UTF-8 text; send it encoded as UTF-8')
  }
}

/** The first lone surrogate inside a parsed JSON value, as a path (I-JSON, RFC 7493, refuses them). */
function loneSurrogateAt(v: unknown, path: string, depth: number): string | undefined {
  if (typeof v === 'string') return v.isWellFormed() ? undefined : path || '(root)'
  if (typeof v !== 'object' || v === null || depth > 128) return undefined
  for (const [k, x] of Object.entries(v)) {
    const p = path === '' ? k : `${path}.${k}`
    if (!k.isWellFormed()) return p
    const found = loneSurrogateAt(x, p, depth + 1)
    if (found) return found
  }
  return undefined
}

const JSON_TYPE = /^application\/([\w.+-]*\+)?json\b/i

/**
 * Reads a JSON body: 415 for a non-JSON content type, 400 for an empty or
 * malformed body, 413 above `maxBytes` (when given; REST routes enforce
 * their limit before the handler).
 *
 * @example
 * ```ts
 * const input = await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES })
 * ```
 */
export async function readJson(c: Context, o: { maxBytes?: number; optional?: boolean } = {}): Promise<unknown> {
  const type = headerOf(c, 'content-type') ?? ''
  if (type && !JSON_TYPE.test(type)) {
    throw new APIError('UNSUPPORTED_MEDIA_TYPE', `Expected a JSON body (Content-Type: application/json), got "${type}"`)
  }
  const encoding = headerOf(c, 'content-encoding')
  if (encoding && encoding.toLowerCase() !== 'identity') throw new APIError('UNSUPPORTED_MEDIA_TYPE', `Request bodies are read as they are; Content-Encoding "${encoding}" is not supported: send the body uncompressed`)
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(type)?.[1]
  if (charset && !/^utf-?8$/i.test(charset)) throw new APIError('UNSUPPORTED_MEDIA_TYPE', `JSON is read as UTF-8 only, got charset "${charset}"; send charset=utf-8`)
  const text = o.maxBytes === undefined ? utf8(new Uint8Array(await c.req.arrayBuffer())) : await readBodyText(c, o.maxBytes)
  if (text.trim().length === 0) {
    if (o.optional) return undefined
    throw new APIError('BAD_REQUEST', 'The request body is empty; send a JSON document')
  }
  let value: unknown
  try {
    value = JSON.parse(text) as unknown
  } catch (e) {
    throw new APIError('INVALID_JSON', `The request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
  const bad = loneSurrogateAt(value, '', 0)
  if (bad) throw new ValidationError('request body', [{ path: bad === '(root)' ? '' : bad, message: 'holds a lone surrogate escape (\\ud800…), which is not valid Unicode text' }])
  return value
}

/**
 * Reads an optional non-negative integer query parameter, or throws a
 * ValidationError naming it.
 *
 * @example
 * ```ts
 * const limit = intParam(c, 'limit') ?? 100
 * ```
 */
export function intParam(c: Context, name: string): number | undefined {
  const raw = c.req.query(name)
  if (raw === undefined || raw === '') return undefined
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new ValidationError('query', [{ path: name, message: `must be a non-negative integer, got "${raw}"` }])
  return Number(raw)
}
