import { parseDuration, type Logger } from '@onepipe/core'
import type { FlowEvent, FlowStore } from './types.js'

/**
 * How long a live reader waits for a notice before it checks the store
 * anyway. Only a safety net: a store whose notification connection was lost
 * wakes every reader itself once it listens again.
 */
export const POLL_MS = 2000
const PAGE = 500

let poll: { raw: string | undefined; ms: number } | undefined

/**
 * The live readers' check interval: `ONEPIPE_FLOW_POLL` (a duration such as
 * `500ms` or `1m`) or {@link POLL_MS}. Throws a ConfigError for a value that
 * is not a duration, which live readers and projection runners ask for when
 * they start.
 *
 * @example
 * ```ts
 * process.env.ONEPIPE_FLOW_POLL = '30s'
 * pollMs() // 30000
 * ```
 */
export function pollMs(): number {
  const raw = process.env.ONEPIPE_FLOW_POLL || undefined
  if (!poll || poll.raw !== raw) poll = { raw, ms: raw === undefined ? POLL_MS : parseDuration(raw) }
  return poll.ms
}

/** Resolves after `ms`, or at once when `signal` aborts; never leaves a timer behind. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const t = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** Waits for the next append notice, the poll interval, or the abort, whichever comes first. */
export async function waitForAppend(store: FlowStore, signal: AbortSignal | undefined, wake = store.nextWake(), ms = pollMs()): Promise<void> {
  // An abort that came before (say, while the consumer handled the last event) fires no event any more.
  if (signal?.aborted) return
  const ac = new AbortController()
  const stop = () => ac.abort()
  signal?.addEventListener('abort', stop, { once: true })
  try {
    await Promise.race([wake, pause(ms, ac.signal)])
  } finally {
    ac.abort()
    signal?.removeEventListener('abort', stop)
  }
}

/**
 * Reads a flow page by page from `after`, in offset order. The reader pulls:
 * the next page is fetched only when the consumer asked for more, so a slow
 * consumer holds at most one page in memory and loses nothing (the events
 * wait in the store). Live readers wait for append notices after catching
 * up; store errors are logged and retried with backoff.
 */
export async function* pullEvents(store: FlowStore, after: number, o: { live: boolean; signal?: AbortSignal; logger: Logger; page?: number }): AsyncGenerator<FlowEvent> {
  let cursor = after
  let backoff = 100
  const page = o.page ?? PAGE
  const every = o.live ? pollMs() : 0
  if (o.live) await store.listen()
  while (!o.signal?.aborted) {
    // Taken before the read so a notice arriving during it is not missed.
    const wake = store.nextWake()
    let rows: FlowEvent[]
    try {
      rows = await store.read(cursor, page)
      backoff = 100
    } catch (e) {
      if (!o.live) throw e
      o.logger.warn({ err: e, after: cursor }, 'flow read failed; retrying')
      await pause(backoff, o.signal)
      backoff = Math.min(backoff * 2, 5000)
      continue
    }
    for (const r of rows) {
      if (o.signal?.aborted) return
      yield r
      cursor = r.offset
    }
    if (rows.length === page) continue
    if (!o.live) return
    await waitForAppend(store, o.signal, wake, every)
  }
}

/**
 * A broadcast wake-up: `next()` is a promise every waiter shares, resolved
 * (and replaced) by `fire()`. One promise per notice, however many readers.
 */
export class Waker {
  #current = Waker.#make()

  static #make(): { promise: Promise<void>; resolve: () => void } {
    let resolve!: () => void
    const promise = new Promise<void>((r) => (resolve = r))
    return { promise, resolve }
  }

  next(): Promise<void> {
    return this.#current.promise
  }

  fire(): void {
    const w = this.#current
    this.#current = Waker.#make()
    w.resolve()
  }
}
