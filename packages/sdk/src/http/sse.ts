/** One server-sent event. */
export interface SseMessage {
  id?: string
  event?: string
  data: string
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
 *
 * @example
 * ```ts
 * return sseResponse(async () => ({ id: '1', data: '{}' }), { onClose: () => ac.abort() })
 * ```
 */
export function sseResponse(next: () => Promise<SseMessage | undefined>, o: { onClose: () => void; heartbeatMs?: number; headers?: Record<string, string> }): Response {
  let timer: NodeJS.Timeout | undefined
  let closed = false
  const close = () => {
    if (closed) return
    closed = true
    if (timer) clearInterval(timer)
    o.onClose()
  }
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        controller.enqueue(enc.encode(': ok\n\n'))
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
