import {
  advanceOffset,
  type AppendRecord,
  type StreamChange,
  type StreamMeta,
  type StreamPlan,
  type TransactResult,
} from './types.js'

/**
 * Group commit shared by the durable stores. Transactions on one path queue
 * up; while one batch is being made durable, the next ones wait, and then
 * ALL of them are decided together against the committed meta and written
 * with one write (file: one write + fsync; Redis: one script call;
 * PostgreSQL: one SQL transaction). Creation, reset and delete replace the
 * whole stream and always travel alone.
 */

interface Pending {
  plan: StreamPlan<unknown>
  resolve: (r: TransactResult<unknown>) => void
  reject: (err: unknown) => void
}

/** One record of a batch with its assigned position. */
export interface PlacedRecord extends AppendRecord {
  offset: string
  next: string
}

/** What a batch decided; the backend persists it atomically. */
export interface Batch {
  /**
   * - `append`: puts (and keeps) on an existing stream: append `records`, then write `meta`.
   * - `create`: a new log (creation, or `reset` of an existing one) starting at `meta.nextOffset` before `records`.
   * - `delete`: remove the stream.
   * - `none`: nothing to write (only keeps and failed plans).
   */
  kind: 'append' | 'create' | 'delete' | 'none'
  /** Meta the batch was decided against (compare-and-set stores check it is still current). */
  base: StreamMeta | undefined
  /** Meta after the batch (undefined after delete). */
  meta: StreamMeta | undefined
  /** Start offset of `records` (the tail before the batch, or the new log's base). */
  start: string
  records: PlacedRecord[]
  /** How many queued transactions the batch decided (a prefix of the queue). */
  readonly size: number
  /** Per transaction: its result, or the error its plan threw. */
  readonly outcomes: ({ ok: TransactResult<unknown> } | { error: unknown })[]
}

/** Upper bounds of one batch. */
export interface BatchLimits {
  maxTransactions: number
  maxBytes: number
}

/** Decides the queue's head against `current`: as many puts/keeps as fit, or one replacing change. */
function decide(queue: readonly Pending[], current: StreamMeta | undefined, limits: BatchLimits): Batch {
  const batch: Batch = { kind: 'none', base: current, meta: current, start: current?.nextOffset ?? '', records: [], size: 0, outcomes: [] }
  const outcomes = batch.outcomes
  let bytes = 0
  for (const item of queue) {
    if (outcomes.length >= limits.maxTransactions || bytes >= limits.maxBytes) break
    let change: StreamChange<unknown>
    try {
      change = item.plan(batch.meta)
    } catch (error) {
      outcomes.push({ error })
      continue
    }
    const working = batch.meta
    const replaces = change.op === 'delete' ? working !== undefined : change.op === 'put' && (working === undefined || change.reset === true)
    if (replaces) {
      if (batch.kind !== 'none' || outcomes.length > 0) break
      if (change.op === 'delete') {
        batch.kind = 'delete'
        batch.meta = undefined
        outcomes.push({ ok: { result: change.result, meta: undefined, appended: [] } })
      } else if (change.op === 'put') {
        batch.kind = 'create'
        batch.start = change.meta.nextOffset
        const appended = place(batch, change.meta.nextOffset, change.append ?? [])
        batch.meta = { ...change.meta, nextOffset: appended.at(-1)?.next ?? change.meta.nextOffset, version: (working?.version ?? 0) + 1 }
        outcomes.push({ ok: { result: change.result, meta: batch.meta, appended } })
      }
      break
    }
    if (change.op === 'put' && working) {
      batch.kind = 'append'
      const appended = place(batch, working.nextOffset, change.append ?? [])
      for (const r of change.append ?? []) bytes += r.data.byteLength
      batch.meta = { ...change.meta, nextOffset: appended.at(-1)?.next ?? working.nextOffset, version: working.version + 1 }
    }
    outcomes.push({ ok: { result: change.result, meta: batch.meta, appended: change.op === 'put' ? batch.records.slice(-(change.append?.length ?? 0)).map(pos) : [] } })
  }
  ;(batch as { size: number }).size = outcomes.length
  return batch
}

function pos(r: PlacedRecord): { offset: string; next: string } {
  return { offset: r.offset, next: r.next }
}

function place(batch: Batch, from: string, records: readonly AppendRecord[]): { offset: string; next: string }[] {
  const out: { offset: string; next: string }[] = []
  let tail = from
  for (const rec of records) {
    const next = advanceOffset(tail, rec.data.byteLength)
    batch.records.push({ offset: tail, next, data: rec.data, count: rec.count })
    out.push({ offset: tail, next })
    tail = next
  }
  return out
}

/**
 * Persists one batch atomically. `decide(current)` may be called several
 * times (e.g. again after a compare-and-set conflict); the backend persists
 * the batch of its LAST call and returns it.
 */
export type BatchCommitter = (path: string, decide: (current: StreamMeta | undefined) => Batch) => Promise<Batch>

interface Lane {
  queue: Pending[]
  draining: Promise<void> | undefined
}

/**
 * Per-path transaction queues with group commit.
 *
 * @example
 * ```ts
 * const queues = new TransactionQueues(async (path, decide) => {
 *   const batch = decide(await loadMeta(path))
 *   await persist(path, batch)
 *   return batch
 * }, (path) => watchers.notify(path))
 * const r = await queues.transact('orders', plan)
 * ```
 */
export class TransactionQueues {
  readonly #lanes = new Map<string, Lane>()
  readonly #commit: BatchCommitter
  readonly #committed: (path: string, batch: Batch) => void
  readonly #limits: BatchLimits

  constructor(commit: BatchCommitter, committed: (path: string, batch: Batch) => void, limits: Partial<BatchLimits> = {}) {
    this.#commit = commit
    this.#committed = committed
    this.#limits = { maxTransactions: limits.maxTransactions ?? 1024, maxBytes: limits.maxBytes ?? 8 * 1024 * 1024 }
  }

  transact<R>(path: string, plan: StreamPlan<R>): Promise<TransactResult<R>> {
    let lane = this.#lanes.get(path)
    if (!lane) {
      lane = { queue: [], draining: undefined }
      this.#lanes.set(path, lane)
    }
    const l = lane
    return new Promise<TransactResult<R>>((resolve, reject) => {
      l.queue.push({ plan, resolve: resolve as (r: TransactResult<unknown>) => void, reject })
      this.#kick(path, l)
    })
  }

  /** Resolves when no transaction is queued or running. */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.#lanes.values()].map((l) => l.draining).filter((p) => p !== undefined)
      if (running.length === 0) return
      await Promise.all(running)
    }
  }

  #kick(path: string, lane: Lane): void {
    if (lane.draining) return
    lane.draining = this.#drain(path, lane).finally(() => {
      lane.draining = undefined
      if (lane.queue.length > 0) this.#kick(path, lane)
      else if (this.#lanes.get(path) === lane) this.#lanes.delete(path)
    })
  }

  async #drain(path: string, lane: Lane): Promise<void> {
    while (lane.queue.length > 0) {
      let batch: Batch
      let held = lane.queue.length
      try {
        batch = await this.#commit(path, (current) => {
          const b = decide(lane.queue, current, this.#limits)
          held = Math.max(1, b.size)
          return b
        })
      } catch (err) {
        // Nothing of the batch was applied: fail the transactions it held.
        for (const item of lane.queue.splice(0, held)) item.reject(err)
        continue
      }
      const items = lane.queue.splice(0, batch.size)
      items.forEach((item, i) => {
        const o = batch.outcomes[i]
        if (o && 'ok' in o) item.resolve(o.ok)
        else item.reject(o?.error)
      })
      if (batch.kind !== 'none') this.#committed(path, batch)
    }
  }
}
