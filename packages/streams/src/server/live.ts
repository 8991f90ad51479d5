import { OnePipeError } from '@onepipe/core'
import type { ReadLimits, ReadOutcome, StreamEngine } from './engine.js'
import { isJsonType, isTextType, recordsToBody } from './records.js'

/**
 * Reads from `from`; when nothing is there yet, waits for the store's change
 * notification (never polls) until `timeoutMs` passes or `signal` aborts.
 * The watcher is registered BEFORE the read, so an append landing between
 * the read and the wait still wakes us.
 */
export async function readOrWait(
  engine: StreamEngine,
  path: string,
  from: string,
  limits: ReadLimits,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ReadOutcome> {
  let changed = false
  let wake: (() => void) | undefined
  const unwatch = engine.store.watch(path, () => {
    changed = true
    wake?.()
  })
  let timer: NodeJS.Timeout | undefined
  const onAbort = () => wake?.()
  signal?.addEventListener('abort', onAbort)
  try {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      changed = false
      const r = await engine.read(path, from, limits)
      if (r.records.length > 0 || r.meta.closed || !r.upToDate) return r
      const left = deadline - Date.now()
      if (left <= 0 || signal?.aborted) return r
      if (!changed) {
        await new Promise<void>((resolve) => {
          wake = resolve
          timer = setTimeout(resolve, left)
        })
        clearTimeout(timer)
        wake = undefined
      }
      if (Date.now() >= deadline || signal?.aborted) return await engine.read(path, from, limits)
      // `from` may have been `now`: keep waiting at the same position.
      from = r.next
    }
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
    unwatch()
  }
}

const enc = new TextEncoder()

/** `data:` lines for a text payload: every CR, LF or CRLF starts a new line, so payloads can never inject events. */
function dataLines(text: string): string {
  let out = ''
  for (const line of text.split(/\r\n|\r|\n/)) out += `data:${line}\n`
  return out
}

export interface SseOptions {
  engine: StreamEngine
  path: string
  from: string
  contentType: string
  limits: ReadLimits
  /** Close the connection after this long; the client resumes from its last offset. */
  lifetimeMs: number
  cursor: () => string
  /** Ends the stream when the server stops. */
  shutdown?: AbortSignal
}

/**
 * One SSE connection as a pull-based sequence of frames. Each batch of
 * records becomes ONE `data` event immediately followed by ONE `control`
 * event carrying `streamNextOffset`, `streamCursor` and `upToDate`; a closed
 * stream ends with `streamClosed: true` and the connection closes. The next
 * batch is read only when the writer asks for it, i.e. after the socket took
 * the previous one: a slow reader holds back its own connection, not memory.
 */
export class SseSession {
  readonly #o: SseOptions
  readonly #json: boolean
  readonly #text: boolean
  readonly #endAt: number
  readonly #abort = new AbortController()
  readonly #stop = () => this.#abort.abort()
  #from: string
  #sentUpToDate = false
  #finished = false
  #ended = false
  /** Set by the store's notification; cleared before each read, so a change during a read is never lost. */
  #dirty = true
  #wake: (() => void) | undefined
  readonly #unwatch: () => void

  constructor(o: SseOptions) {
    this.#o = o
    this.#json = isJsonType(o.contentType)
    this.#text = isTextType(o.contentType)
    this.#endAt = Date.now() + o.lifetimeMs
    this.#from = o.from
    o.shutdown?.addEventListener('abort', this.#stop, { once: true })
    // One watcher for the connection's whole life: a delivery costs one read.
    this.#unwatch = o.engine.store.watch(o.path, () => {
      this.#dirty = true
      this.#wake?.()
    })
  }

  /** The next frame(s) to write, or `undefined` when the connection should end. */
  async next(): Promise<string | undefined> {
    try {
      for (;;) {
        const left = this.#endAt - Date.now()
        if (this.#finished || left <= 0 || this.#abort.signal.aborted) return this.#end()
        if (!this.#dirty && this.#sentUpToDate) {
          await this.#waitForChange(left)
          continue
        }
        this.#dirty = false
        const r = await this.#o.engine.read(this.#o.path, this.#from, this.#o.limits)
        if (this.#abort.signal.aborted) return this.#end()
        const closedAtEnd = r.upToDate && r.meta.closed
        this.#from = r.next
        if (r.records.length > 0 || closedAtEnd || !this.#sentUpToDate) {
          this.#sentUpToDate = r.upToDate || r.records.length === 0
          if (closedAtEnd) this.#finished = true
          return this.#frame(r)
        }
      }
    } catch (err) {
      this.#end()
      // A stream deleted or expired under a live reader just ends its connection.
      if (err instanceof OnePipeError && err.status < 500) return undefined
      throw err
    }
  }

  #waitForChange(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.#abort.signal.removeEventListener('abort', done)
        this.#wake = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.#abort.signal.addEventListener('abort', done, { once: true })
      this.#wake = done
    })
  }

  /** The client went away or the server stops. */
  cancel(): void {
    this.#end()
  }

  #end(): undefined {
    this.#finished = true
    if (this.#ended) return undefined
    this.#ended = true
    this.#unwatch()
    this.#o.shutdown?.removeEventListener('abort', this.#stop)
    this.#abort.abort()
    return undefined
  }

  #frame(r: ReadOutcome): string {
    let out = ''
    if (r.records.length > 0) {
      const body = recordsToBody(r.records, this.#json)
      out += `event: data\n${this.#text ? dataLines(body.toString('utf8')) : `data:${body.toString('base64')}\n`}\n`
    }
    const control: Record<string, unknown> = { streamNextOffset: r.next }
    if (r.upToDate && r.meta.closed) control.streamClosed = true
    else control.streamCursor = this.#o.cursor()
    if (r.upToDate) control.upToDate = true
    out += `event: control\ndata:${JSON.stringify(control)}\n\n`
    return out
  }
}

/** An SSE session as a ReadableStream (for WHATWG Response bodies). */
export function sseStream(session: SseSession): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      pull: async (controller) => {
        const frame = await session.next()
        if (frame === undefined) controller.close()
        else controller.enqueue(enc.encode(frame))
      },
      cancel: () => session.cancel(),
    },
    { highWaterMark: 1 },
  )
}
