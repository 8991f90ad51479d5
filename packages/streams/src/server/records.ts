import { StreamBadRequestError, type AppendRecord, type StoredRecord } from '../stores/types.js'

/**
 * How payload bytes are framed for one content type. JSON mode
 * (`application/json`) stores each POST as one record holding the batch's
 * JSON values joined by `,`, so a read is `[` + records joined by `,` + `]`
 * without re-parsing anything.
 */

/** The media type without parameters, lowercased: `Application/JSON; charset=utf-8` → `application/json`. */
export function mediaType(contentType: string): string {
  const semi = contentType.indexOf(';')
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
}

/** Whether a stream of this content type runs in JSON mode. */
export function isJsonType(contentType: string): boolean {
  const m = mediaType(contentType)
  return m === 'application/json' || m.endsWith('+json')
}

/** Whether SSE can carry this content type as text (others go base64). */
export function isTextType(contentType: string): boolean {
  const m = mediaType(contentType)
  return (
    m.startsWith('text/') ||
    isJsonType(m) ||
    m === 'application/x-ndjson' ||
    m === 'application/xml' ||
    m.endsWith('+xml') ||
    m === 'application/javascript'
  )
}

const COMMA = Buffer.from(',')
const OPEN = Buffer.from('[')
const CLOSE = Buffer.from(']')
const EMPTY_ARRAY = Buffer.from('[]')

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Why a parsed JSON value would not read back as it was sent (RFC 7493):
 * a string or name with a lone surrogate, or a number too large for a
 * double (it would read back as another number). Undefined when fine.
 */
function notIJson(v: unknown, path: string, depth: number): string | undefined {
  if (typeof v === 'string') return v.isWellFormed() ? undefined : `the string at "${path || '(root)'}" holds a lone surrogate`
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : `the number at "${path || '(root)'}" is beyond the range of a double`
  if (typeof v !== 'object' || v === null || depth > 512) return undefined
  for (const [k, x] of Object.entries(v)) {
    const p = path === '' ? k : `${path}.${k}`
    if (!k.isWellFormed()) return `the name "${p}" holds a lone surrogate`
    const why = notIJson(x, p, depth + 1)
    if (why) return why
  }
  return undefined
}

/**
 * Turns a request body into records. In JSON mode a top-level array is
 * flattened one level (its values are the messages); any other value is one
 * message. `[]` gives no record (fine for PUT, refused for POST by the caller).
 */
export function bodyToRecords(body: Uint8Array, json: boolean): AppendRecord[] {
  if (body.byteLength === 0) return []
  if (!json) return [{ data: body, count: 1 }]
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    throw new StreamBadRequestError('STREAM_INVALID_JSON', 'Body is not valid UTF-8; JSON is UTF-8 text (RFC 8259).')
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new StreamBadRequestError('STREAM_INVALID_JSON', `Body is not valid JSON (${(err as Error).message}); JSON streams accept one JSON value or an array of values.`)
  }
  const bad = notIJson(value, '', 0)
  if (bad) throw new StreamBadRequestError('STREAM_INVALID_JSON', `Body is JSON that does not read back as sent (I-JSON, RFC 7493): ${bad}.`)
  const trimmed = text.trim()
  if (!Array.isArray(value)) {
    return [{ data: trimmed.length === text.length ? body : Buffer.from(trimmed), count: 1 }]
  }
  if (value.length === 0) return []
  return [{ data: Buffer.from(trimmed.slice(1, -1).trim()), count: value.length }]
}

/** Byte length of `recordsToBody(records, json)`, without building it. */
export function bodyLength(records: readonly StoredRecord[], json: boolean): number {
  let n = 0
  for (const r of records) n += r.data.byteLength
  return json ? n + 2 + Math.max(0, records.length - 1) : n
}

/** Payload of a response body for records read in JSON or raw mode. */
export function recordsToBody(records: readonly StoredRecord[], json: boolean): Buffer {
  if (json) {
    if (records.length === 0) return EMPTY_ARRAY
    const parts: Uint8Array[] = [OPEN]
    for (let i = 0; i < records.length; i++) {
      if (i > 0) parts.push(COMMA)
      parts.push((records[i] as StoredRecord).data)
    }
    parts.push(CLOSE)
    return Buffer.concat(parts)
  }
  if (records.length === 1) {
    const d = (records[0] as StoredRecord).data
    return Buffer.from(d.buffer, d.byteOffset, d.byteLength)
  }
  return Buffer.concat(records.map((r) => r.data))
}

/**
 * The first `sub` messages (JSON) or bytes (other types) of one record, for a
 * fork that branches inside an append. Throws 400 when `sub` overshoots.
 */
export function recordPrefix(record: AppendRecord, sub: number, json: boolean): AppendRecord {
  if (json) {
    if (sub > record.count) {
      throw new StreamBadRequestError('STREAM_FORK_SUB_OFFSET', `Stream-Fork-Sub-Offset ${sub} is past the ${record.count} messages of that append.`)
    }
    const values = JSON.parse(`[${Buffer.from(record.data).toString('utf8')}]`) as unknown[]
    return { data: Buffer.from(values.slice(0, sub).map((v) => JSON.stringify(v)).join(',')), count: sub }
  }
  if (sub > record.data.byteLength) {
    throw new StreamBadRequestError('STREAM_FORK_SUB_OFFSET', `Stream-Fork-Sub-Offset ${sub} is past the ${record.data.byteLength} bytes of that append.`)
  }
  return { data: record.data.subarray(0, sub), count: 1 }
}
