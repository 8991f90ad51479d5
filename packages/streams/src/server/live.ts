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
 * An SSE body. Each batch of records becomes ONE `data` event immediately
 * followed by ONE `control` event carrying `streamNextOffset`, `streamCursor`
 * and `upToDate`; a closed stream ends with `streamClosed: true` and the
 * connection closes. The stream is pull-driven: the next batch is read only
 * when the socket drained the previous one.
 */
export function sseBody(o: SseOptions): ReadableStream<Uint8Array> {
  const json = isJsonType(o.contentType)
  const text = isTextType(o.contentType)
  const endAt = Date.now() + o.lifetimeMs
  const abort = new AbortController()
  const stop = () => abort.abort()
  o.shutdown?.addEventListener('abort', stop, { once: true })
  let from = o.from
  let sentUpToDate = false
  let finished = false
  const finish = (controller: ReadableStreamDefaultController<Uint8Array>, err?: unknown) => {
    if (finished) return
    finished = true
    o.shutdown?.removeEventListener('abort', stop)
    abort.abort()
    if (err === undefined) controller.close()
    else controller.error(err)
  }

  const frame = (r: ReadOutcome): string => {
    let out = ''
    if (r.records.length > 0) {
      const body = recordsToBody(r.records, json)
      out += `event: data\n${text ? dataLines(body.toString('utf8')) : `data:${body.toString('base64')}\n`}\n`
    }
    const atEnd = r.upToDate && r.meta.closed
    const control: Record<string, unknown> = { streamNextOffset: r.next }
    if (atEnd) control.streamClosed = true
    else control.streamCursor = o.cursor()
    if (r.upToDate) control.upToDate = true
    out += `event: control\ndata:${JSON.stringify(control)}\n\n`
    return out
  }

  return new ReadableStream<Uint8Array>(
    {
      pull: async (controller) => {
        try {
          for (;;) {
            const left = endAt - Date.now()
            if (left <= 0 || abort.signal.aborted) return finish(controller)
            const r = await readOrWait(o.engine, o.path, from, o.limits, sentUpToDate ? left : 0, abort.signal)
            if (abort.signal.aborted) return finish(controller)
            const closedAtEnd = r.upToDate && r.meta.closed
            if (r.records.length > 0 || closedAtEnd || (r.upToDate && !sentUpToDate)) {
              controller.enqueue(enc.encode(frame(r)))
              from = r.next
              sentUpToDate = r.upToDate
              if (closedAtEnd) finish(controller)
              return
            }
            from = r.next
          }
        } catch (err) {
          // A stream deleted or expired under a live reader just ends its connection.
          finish(controller, err instanceof OnePipeError && err.status < 500 ? undefined : err)
        }
      },
      cancel: () => {
        finished = true
        o.shutdown?.removeEventListener('abort', stop)
        abort.abort()
      },
    },
    { highWaterMark: 1 },
  )
}
