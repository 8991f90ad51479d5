import { AuthError, respondError, sseResponse, type AuthUser, type Logger, type SseMessage } from '@onepipe/sdk'
import type { PipelineChange } from '@onepipe/pipelines'
import type { Context } from 'hono'

/** Changes queued for one client before it is told to resync instead (docs/dashboard.md). */
export const LIVE_QUEUE_LIMIT = 256

/** Where live changes come from: each source calls back with every change and returns its unsubscribe. */
export type ChangeSource = (fn: (c: PipelineChange) => void) => () => void

/**
 * A queue of one client's changes that never grows past `limit`: when the
 * client falls that far behind, what it missed is dropped and it gets one
 * `resync` (refetch what you show) instead of a silent gap, the way a
 * Kubernetes watch answers "410 Gone" and the client relists.
 *
 * @example
 * ```ts
 * const q = new LiveQueue(256)
 * q.push({ event: 'pipeline', data: '{…}' })
 * await q.next() // { event: 'pipeline', data: '{…}' }
 * ```
 */
export class LiveQueue {
  readonly #limit: number
  #items: SseMessage[] = []
  #resync = false
  #wake: (() => void) | undefined

  constructor(limit: number) {
    this.#limit = limit
  }

  push(m: SseMessage): void {
    if (this.#resync) return
    if (this.#items.length >= this.#limit) {
      this.#items = []
      this.#resync = true
    } else this.#items.push(m)
    this.#wake?.()
  }

  async next(): Promise<SseMessage> {
    for (;;) {
      if (this.#resync) {
        this.#resync = false
        return { event: 'resync', data: JSON.stringify({ reason: `more than ${this.#limit} changes were waiting for this client; refetch what you show` }) }
      }
      const m = this.#items.shift()
      if (m) return m
      await new Promise<void>((r) => (this.#wake = r))
      this.#wake = undefined
    }
  }
}

/**
 * `GET /__onepipe/live`: the signed-in caller's Server-Sent Events of
 * pipeline changes from every replica, scoped to what it may see (an
 * application's key: its own application only), with `resync` when it
 * falls behind.
 */
export function liveRoute(sources: readonly ChangeSource[], signal: AbortSignal, logger: Logger, limit = LIVE_QUEUE_LIMIT) {
  return (c: Context): Response => {
    const user = c.get('user' as never) as AuthUser | undefined
    if (user?.kind === 'application' && !user.applicationId) return respondError(c, new AuthError('FORBIDDEN', 'This key belongs to no application'), logger)
    const only = user?.kind === 'application' ? (user.applicationId ?? null) : null
    const q = new LiveQueue(limit)
    const stops = sources.map((src) =>
      src((ch) => {
        if (only === null || ch.appId === only) q.push({ event: 'pipeline', data: JSON.stringify(ch) })
      }),
    )
    return sseResponse(() => q.next(), { onClose: () => stops.forEach((s) => s()), signal, heartbeatMs: 15_000 })
  }
}
