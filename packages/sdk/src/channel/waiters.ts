import { createHash } from 'node:crypto'
import type { Database } from '@onepipe/core'

/** The NOTIFY channel every Channel shares (scoped to the database's schema by `db.channel`). */
export const NOTIFY = 'onepipe_channel'

/** The payload that announces a finished key; long keys are hashed to stay under NOTIFY's 8000-byte limit. */
export function keyTag(channel: string, key: string): string {
  const k = key.length <= 200 ? key : createHash('sha256').update(key).digest('hex')
  return `${channel}\t${k}`
}

/**
 * Callers waiting for another instance to finish a key. One LISTEN
 * connection per channel object; a notification wakes every local waiter of
 * that key at once.
 */
export class KeyWaiters {
  readonly #db: Database
  #listening: Promise<() => Promise<void>> | undefined
  readonly #waiting = new Map<string, Set<() => void>>()

  constructor(db: Database) {
    this.#db = db
  }

  /** Starts listening (once). */
  async ready(): Promise<void> {
    this.#listening ??= this.#db.listen(NOTIFY, (payload) => {
      for (const wake of this.#waiting.get(payload) ?? []) wake()
    })
    try {
      await this.#listening
    } catch (e) {
      this.#listening = undefined
      throw e
    }
  }

  /** Registers interest in a key before looking at it, so a notification in between is not lost. */
  register(tag: string): { wait(ms: number): Promise<void>; cancel(): void } {
    let wake!: () => void
    const notified = new Promise<void>((r) => (wake = r))
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
        await Promise.race([notified, new Promise<void>((r) => (t = setTimeout(r, ms)))])
        clearTimeout(t)
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
