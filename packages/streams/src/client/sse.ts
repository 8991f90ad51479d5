import type { StreamBatch } from './index.js'

/** One parsed SSE event. */
interface SseEvent {
  type: string
  data: string
}

/** Splits SSE text into complete events; returns them and the unfinished rest. */
function parseEvents(buffer: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = []
  const text = buffer.replace(/\r\n?/g, '\n')
  let start = 0
  for (;;) {
    const end = text.indexOf('\n\n', start)
    if (end === -1) break
    let type = 'message'
    const data: string[] = []
    for (const line of text.slice(start, end).split('\n')) {
      if (line.startsWith('event:')) type = line.slice(6).trim()
      else if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5))
    }
    events.push({ type, data: data.join('\n') })
    start = end + 2
  }
  return { events, rest: text.slice(start) }
}

const dec = new TextDecoder()
const enc = new TextEncoder()

/**
 * Batches from one SSE response: every `data` event is held until the
 * `control` event after it, which gives the batch its offset (a control
 * event alone gives an empty batch that only moves the offset). Reads the
 * socket only when the consumer asks for the next batch, so a slow consumer
 * slows the connection (TCP backpressure) instead of growing a buffer.
 * Ends when the server closes the connection (its SSE lifetime) or the
 * stream is closed.
 */
export async function* sseBatches<T>(res: Response, onCursor: (cursor: string) => void): AsyncGenerator<StreamBatch<T>, void, undefined> {
  const base64 = res.headers.get('stream-sse-data-encoding') === 'base64'
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  let buffer = ''
  let messages: T[] = []
  let parts: Uint8Array[] = []
  // SSE responses are text/event-stream: JSON mode shows in the payload (an array per data event).
  let isJson: boolean | undefined
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      buffer += dec.decode(value, { stream: true })
      const { events, rest } = parseEvents(buffer)
      buffer = rest
      for (const ev of events) {
        if (ev.type === 'data') {
          const bytes = base64 ? Buffer.from(ev.data, 'base64') : enc.encode(ev.data)
          parts.push(bytes)
          // JSON streams send a JSON array per data event.
          if (isJson !== false && !base64) {
            try {
              const parsed: unknown = JSON.parse(ev.data)
              if (Array.isArray(parsed)) {
                messages.push(...(parsed as T[]))
                isJson = true
              } else isJson = false
            } catch {
              isJson = false
            }
          }
        } else if (ev.type === 'control') {
          const c = JSON.parse(ev.data) as { streamNextOffset?: string; streamCursor?: string; upToDate?: boolean; streamClosed?: boolean }
          if (c.streamCursor) onCursor(c.streamCursor)
          const data = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts)
          const batch: StreamBatch<T> = {
            messages: isJson ? messages : [],
            data,
            offset: c.streamNextOffset ?? '',
            upToDate: c.upToDate === true,
            closed: c.streamClosed === true,
          }
          messages = []
          parts = []
          yield batch
          if (batch.closed) return
        }
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined)
  }
}
