import { useEffect, useRef, useState } from 'react'
import { appApi } from './app'

/** `live` once the stream is open and delivering. */
export type StreamState = 'connecting' | 'live' | 'closed'

export interface StreamHandlers {
  /** Named events (`event: pipeline`); `message` for events without a name. */
  on: Record<string, (data: unknown, id: string) => void>
  /** After the stream came back from a break: whatever it missed must be read again. */
  onReopen?: () => void
}

const parse = (s: string): unknown => {
  try {
    return JSON.parse(s)
  } catch {
    return s
  }
}

/**
 * An EventSource that survives what the browser's own reconnect does not: a
 * non-200 answer (401 once the access cookie expired, 503 while a replica
 * restarts) closes it for good, so it waits, renews the session and opens again.
 */
export function useEventStream(url: string | null, handlers: StreamHandlers): StreamState {
  const ref = useRef(handlers)
  ref.current = handlers
  const [state, setState] = useState<StreamState>('connecting')

  useEffect(() => {
    if (!url) {
      setState('closed')
      return
    }
    let es: EventSource | undefined
    let timer: ReturnType<typeof setTimeout> | undefined
    let stopped = false
    let opens = 0
    let failures = 0

    const connect = () => {
      setState('connecting')
      es = new EventSource(url)
      es.onopen = () => {
        failures = 0
        setState('live')
        if (opens++ > 0) ref.current.onReopen?.()
      }
      es.onerror = () => {
        if (!es || es.readyState !== EventSource.CLOSED) {
          setState('connecting')
          return
        }
        es.close()
        setState('closed')
        const wait = Math.min(30_000, 1000 * 2 ** failures++)
        timer = setTimeout(() => {
          // A GET through the API layer renews an expired session, or sends the page to login.
          void appApi.me().catch(() => undefined).finally(() => {
            if (!stopped) connect()
          })
        }, wait)
      }
      for (const name of Object.keys(ref.current.on)) {
        es.addEventListener(name, (ev) => {
          const m = ev as MessageEvent<string>
          ref.current.on[name]?.(parse(m.data), m.lastEventId)
        })
      }
    }
    connect()
    return () => {
      stopped = true
      if (timer) clearTimeout(timer)
      es?.close()
    }
  }, [url])

  return state
}
