import { randomBytes } from 'node:crypto'
import { TransportError } from '@onepipe/core'
import type { StreamMeta, StreamPlan, TransactResult } from './types.js'
import { TransactionQueues, type Batch } from './batch.js'
import { PathWatchers } from './watchers.js'

/** Longest path named in a change notice; longer ones wake every watcher instead (NOTIFY payloads are capped). */
const MAX_NOTICE_PATH = 4000

/**
 * What the stores shared by several processes (Redis, PostgreSQL) have in
 * common: group-committed transactions, local watchers woken right after
 * their own commits, and change notices from OTHER processes
 * (`"<instance> <path>"`, own notices ignored, `*` = every path).
 *
 * @example
 * ```ts
 * class MyStore extends SharedBackendStore {
 *   protected persist(path, decide) { … one atomic write, then publish this.notice(path) … }
 * }
 * ```
 */
export abstract class SharedBackendStore {
  /** Identifies this process's notices, so it does not wake itself twice. */
  protected readonly instance = randomBytes(8).toString('hex')
  protected readonly watchers = new PathWatchers()
  readonly #queues: TransactionQueues
  #closed = false

  protected constructor() {
    this.#queues = new TransactionQueues(
      (path, decide) => this.persist(path, decide),
      (path) => this.watchers.notify(path),
      { maxTransactions: 512, maxBytes: 4 * 1024 * 1024 },
    )
  }

  /** Decides one batch against the stored meta and applies it atomically (see {@link TransactionQueues}). */
  protected abstract persist(path: string, decide: (current: StreamMeta | undefined) => Batch): Promise<Batch>

  transact<R>(path: string, plan: StreamPlan<R>): Promise<TransactResult<R>> {
    if (this.#closed) return Promise.reject(new TransportError('STREAM_STORE_CLOSED', 'The streams store was closed.'))
    return this.#queues.transact(path, plan)
  }

  watch(path: string, listener: () => void): () => void {
    return this.watchers.add(path, listener)
  }

  /** The notice to publish after a change to `path`. */
  protected notice(path: string): string {
    return `${this.instance} ${path.length <= MAX_NOTICE_PATH ? path : '*'}`
  }

  /** Wakes watchers for a notice from another process. */
  protected onNotice(payload: string): void {
    const space = payload.indexOf(' ')
    if (space < 0 || payload.slice(0, space) === this.instance) return
    const path = payload.slice(space + 1)
    if (path === '*') this.wakeAll()
    else this.watchers.notify(path)
  }

  /** Wakes every watcher (after a reconnect, notices may have been missed). */
  protected wakeAll(): void {
    for (const path of [...this.watchers.paths()]) this.watchers.notify(path)
  }

  /** Stops new transactions and waits for running ones; true the first time. */
  protected async shutdown(): Promise<boolean> {
    if (this.#closed) return false
    this.#closed = true
    await this.#queues.idle()
    this.watchers.clear()
    return true
  }
}
