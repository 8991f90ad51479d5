/** One server-sent event. */
export interface SseMessage {
  id?: string
  event?: string
  data: string
}

/** Options of {@link sseResponse}. */
export interface SseResponseOptions {
  /** Called once when the stream ends, whoever ended it: release what feeds `next()` here. */
  onClose: () => void
  /**
   * Ends the stream cleanly when it aborts. Pass the runtime's `rt.signal`:
   * `serve()` aborts it the moment shutdown starts, so the client sees a
   * normal end of stream and reconnects (to another instance) instead of
   * holding the drain open until the budget runs out.
   */
  signal?: AbortSignal
  /** Interval of `: keep-alive` comments (default 15 s). */
  heartbeatMs?: number
  headers?: Record<string, string>
}

const enc = new TextEncoder()

function frame(m: SseMessage): Uint8Array {
  let s = ''
  if (m.id !== undefined) s += `id: ${m.id}\n`
  if (m.event !== undefined) s += `event: ${m.event}\n`
  for (const line of m.data.split('\n')) s += `data: ${line}\n`
  return enc.encode(`${s}\n`)
}

/**
 * A `text/event-stream` Response fed by `next()`, pulled only as fast as the
 * client reads: the next message is produced when the socket drained the
 * previous one, so a slow client holds one message (plus socket buffers) in
 * memory and the rest waits in the store. Heartbeat comments keep proxies
 * from closing an idle stream and are skipped while the client is behind.
 * The stream ends when `next()` returns `undefined`, the client goes away,
 * or `signal` aborts.
 *
 * @example
 * ```ts
 * // In a Component's routes(app, rt):
 * return sseResponse(async () => ({ id: '1', data: '{}' }), { onClose: () => ac.abort(), signal: rt.signal })
 * ```
 */
export function sseResponse(next: () => Promise<SseMessage | undefined>, o: SseResponseOptions): Response {
  let timer: NodeJS.Timeout | undefined
  let closed = false
  let end: (() => void) | undefined
  const close = () => {
    if (closed) return
    closed = true
    if (timer) clearInterval(timer)
    if (end) o.signal?.removeEventListener('abort', end)
    o.onClose()
  }
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        controller.enqueue(enc.encode(': ok\n\n'))
        end = () => {
          if (closed) return
          close()
          // Frames already queued are still delivered, then the stream ends normally.
          controller.close()
        }
        if (o.signal?.aborted) {
          end()
          return
        }
        o.signal?.addEventListener('abort', end, { once: true })
        timer = setInterval(() => {
          if (!closed && (controller.desiredSize ?? 0) > 0) controller.enqueue(enc.encode(': keep-alive\n\n'))
        }, o.heartbeatMs ?? 15_000)
      },
      async pull(controller) {
        try {
          const m = await next()
          if (closed) return
          if (m === undefined) {
            close()
            controller.close()
            return
          }
          controller.enqueue(frame(m))
        } catch (e) {
          if (closed) return
          close()
          controller.error(e)
        }
      },
      cancel() {
        close()
      },
    },
    { highWaterMark: 1 },
  )
  return new Response(body, {
    status: 200,
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no', ...o.headers },
  })
}
