import { TransportError } from '@onepipe/core'
import { decodeOffset, StreamNotFoundError, StreamsClient, type StreamHandle } from '@onepipe/streams'
import { pause, Waker } from './pull.js'
import type { FlowEvent, FlowStore } from './types.js'

/** What one flow append stores in the stream: the event without its offset (the stream gives that). */
interface Envelope {
  id: string
  timestamp: number
  data: unknown
  /** W3C traceparent of the append, when traced (absent otherwise, so untraced records stay as they were). */
  tp?: string
}

/** How many numeric offset → stream offset pairs a store remembers (sequential readers only need the last). */
const KNOWN_MAX = 4096

function recordsOf(offset: string): number {
  if (offset === '-1') return 0
  const p = decodeOffset(offset)
  if (!p) throw new TransportError('FLOW_STREAM_OFFSET', `The streams server answered an offset "${offset}" this client cannot read; are client and server the same version?`)
  return p.records
}

/**
 * A flow kept in the OnePipe streams server under `flows/{name}`. Each
 * append is one POST, so it is one record of the stream and the flow offset
 * of an event is the stream's record count after it: the server assigns it,
 * and it grows strictly across every writer. The stream's own offsets are
 * opaque strings; the store remembers the ones it saw and finds others
 * with one bounded read.
 */
export class StreamsFlowStore implements FlowStore {
  readonly kind = 'streams' as const
  readonly #h: StreamHandle<Envelope>
  #created: Promise<unknown> | undefined
  #known = new Map<number, string>([[0, '-1']])
  readonly #wake = new Waker()
  #watch: { ac: AbortController; done: Promise<void> } | undefined

  constructor(client: StreamsClient, name: string) {
    this.#h = client.stream<Envelope>(`flows/${name}`)
  }

  #remember(n: number, offset: string): void {
    if (this.#known.size >= KNOWN_MAX) {
      const oldest = this.#known.keys().next().value
      if (oldest !== undefined && oldest !== 0) this.#known.delete(oldest)
    }
    this.#known.set(n, offset)
  }

  #create(): Promise<unknown> {
    this.#created ??= this.#h.create({ contentType: 'application/json' }).catch((e: unknown) => {
      this.#created = undefined
      throw e
    })
    return this.#created
  }

  async append(id: string, data: unknown, traceparent?: string | null): Promise<FlowEvent> {
    await this.#create()
    const timestamp = Date.now()
    const next = await this.#h.append(traceparent ? { id, timestamp, data, tp: traceparent } : { id, timestamp, data })
    const offset = recordsOf(next)
    this.#remember(offset, next)
    this.#wake.fire()
    return traceparent ? { id, offset, timestamp, data, traceparent } : { id, offset, timestamp, data }
  }

  /** The stream offset after `n` records, or undefined when the stream has fewer. */
  async #cursor(n: number): Promise<string | undefined> {
    const hit = this.#known.get(n)
    if (hit !== undefined) return hit
    let from = 0
    for (const k of this.#known.keys()) if (k < n && k > from) from = k
    let at = this.#known.get(from) ?? '-1'
    while (from < n) {
      const b = await this.#h.read({ offset: at, limit: Math.min(n - from, 10_000) })
      const reached = recordsOf(b.offset)
      if (reached === from) return undefined
      from = reached
      at = b.offset
      this.#remember(from, at)
    }
    return from === n ? at : undefined
  }

  async read(after: number, limit: number): Promise<FlowEvent[]> {
    try {
      const at = await this.#cursor(after)
      if (at === undefined) return []
      const b = await this.#h.read({ offset: at, limit })
      const end = recordsOf(b.offset)
      if (end - after !== b.messages.length) {
        throw new TransportError('FLOW_STREAM_FOREIGN_APPEND', `Stream flows/${this.#h.name.slice(6)} holds appends with several messages; only Flow.append may write to a flow's stream`)
      }
      if (b.messages.length > 0) this.#remember(end, b.offset)
      return b.messages.map((m, i) => (m.tp ? { id: m.id, offset: after + i + 1, timestamp: m.timestamp, data: m.data, traceparent: m.tp } : { id: m.id, offset: after + i + 1, timestamp: m.timestamp, data: m.data }))
    } catch (e) {
      if (e instanceof StreamNotFoundError) return []
      throw e
    }
  }

  async tail(n: number): Promise<FlowEvent[]> {
    const head = await this.head()
    return this.read(Math.max(0, head - n), n)
  }

  async head(): Promise<number> {
    try {
      const h = await this.#h.head()
      const n = recordsOf(h.offset)
      this.#remember(n, h.offset)
      return n
    } catch (e) {
      if (e instanceof StreamNotFoundError) return 0
      throw e
    }
  }

  /** One long-poll per flow and process; each batch it sees wakes the readers. */
  async listen(): Promise<void> {
    if (this.#watch) return
    await this.#create()
    const ac = new AbortController()
    const done = (async () => {
      let lost = false
      while (!ac.signal.aborted) {
        try {
          const it = this.#h.subscribe({ offset: 'now', limit: 100, signal: ac.signal })
          if (lost) {
            // Appends made while this wake-up source was down woke nobody: every reader reads again.
            lost = false
            this.#wake.fire()
          }
          for await (const b of it) {
            this.#remember(recordsOf(b.offset), b.offset)
            this.#wake.fire()
          }
        } catch {
          // Not lost: readers fall back to polling (and report read errors
          // themselves) while this wake-up source reconnects.
          if (ac.signal.aborted) break
          lost = true
          await pause(1000, ac.signal)
        }
      }
    })()
    this.#watch = { ac, done }
  }

  nextWake(): Promise<void> {
    return this.#wake.next()
  }

  /** The streams server expires whole streams (TTL); per-event retention is not available there. */
  async sweep(): Promise<number> {
    return 0
  }

  async close(): Promise<void> {
    const w = this.#watch
    this.#watch = undefined
    if (!w) return
    w.ac.abort()
    await w.done
    this.#wake.fire()
  }
}

/**
 * The store for a flow without `.db()`: the OnePipe streams server
 * (`ONEPIPE_STREAMS_URL`, which `serve()` sets when it embeds the server).
 */
export function streamsFlowStore(name: string, client: StreamsClient | undefined): FlowStore {
  return new StreamsFlowStore(client ?? new StreamsClient(), name)
}
