import { createHash } from 'node:crypto'
import type { Database } from '@onepipe/core'

/** The NOTIFY channel every Channel shares (scoped to the database's schema by `db.channel`). */
export const NOTIFY = 'onepipe_channel'

/** Longest a waiting duplicate goes without looking at the row again (a notification that never came, a dead owner). */
export const RECHECK_MS = 2000

/** The payload that announces a finished key; long keys are hashed to stay under NOTIFY's 8000-byte limit. */
export function keyTag(channel: string, key: string): string {
  const k = key.length <= 200 ? key : createHash('sha256').update(key).digest('hex')
  return `${channel}\t${k}`
}

/** Why {@link KeyWaiters} let a waiter go: its key's notification, a reconnect of the listener, or its own re-check time. */
export type WakeReason = 'notified' | 'reconnected' | 'recheck'

/**
 * Callers waiting for another instance to finish a key. One LISTEN
 * connection per channel object; a notification wakes every local waiter of
 * that key at once. A NOTIFY sent while the listening connection was down is
 * gone for good, so when it comes back every waiter is woken to look at its
 * row again at once, instead of sleeping until its re-check.
 */
export class KeyWaiters {
  readonly #db: Database
  /** The longest one wait lasts without a notification. */
  readonly recheckMs: number
  #listening: Promise<() => Promise<void>> | undefined
  readonly #waiting = new Map<string, Set<(why: WakeReason) => void>>()

  constructor(db: Database, recheckMs = RECHECK_MS) {
    this.#db = db
    this.recheckMs = recheckMs
  }

  /** Starts listening (once). */
  async ready(): Promise<void> {
    this.#listening ??= this.#db.listen(
      NOTIFY,
      (payload) => {
        for (const wake of this.#waiting.get(payload) ?? []) wake('notified')
      },
      { onReconnect: () => this.#wakeAll() },
    )
    try {
      await this.#listening
    } catch (e) {
      this.#listening = undefined
      throw e
    }
  }

  #wakeAll(): void {
    for (const set of this.#waiting.values()) for (const wake of set) wake('reconnected')
  }

  /**
   * Registers interest in a key before looking at it, so a notification (or
   * a reconnect) in between is not lost: `wait` then returns at once.
   */
  register(tag: string): { wait(ms: number): Promise<WakeReason>; cancel(): void } {
    let wake!: (why: WakeReason) => void
    const woken = new Promise<WakeReason>((r) => (wake = r))
    let set = this.#waiting.get(tag)
    if (!set) this.#waiting.set(tag, (set = new Set()))
    set.add(wake)
    const cancel = () => {
      set.delete(wake)
      if (set.size === 0 && this.#waiting.get(tag) === set) this.#waiting.delete(tag)
    }
    return {
      cancel,
      async wait(ms: number) {
        let t: NodeJS.Timeout | undefined
        const why = await Promise.race([woken, new Promise<WakeReason>((r) => (t = setTimeout(() => r('recheck'), ms)))])
        clearTimeout(t)
        return why
      },
    }
  }

  /** Stops listening. */
  async close(): Promise<void> {
    const l = this.#listening
    this.#listening = undefined
    if (l) await (await l.catch(() => async () => {}))()
  }
}
