// Changes share transactions. Every change appends its event to the store's
// flow, whose counter row stays locked from that append until the commit:
// changes of one store commit one after another, each paying a whole commit
// (a WAL flush) under the lock. So the changes issued while a transaction
// is in flight wait and go together in the next one: their statements are
// sent together (pipelined on the connection; the changes of one Thing one
// after another), then one statement appends all their events, then one
// commit.
// Outcomes stay each change's own: a typed refusal (not found, a version
// conflict, a refused value) touches nothing and fails only its change; a
// failed statement rolls the shared transaction back, and every change of
// it is then run again alone, so it fails only itself.
import { DatabaseError, OnePipeError, TransportError, type Database, type Queryable } from '@onepipe/core'
import type { Flow } from '../flow/flow.js'
import type { NewThing } from './store.js'
import type { ThingEvent } from './types.js'

/** The most changes one transaction carries. */
const MAX_BATCH = 100

/** What one change answers once its statements ran: its result, and its event unless it changed nothing. */
export interface Changed<R> {
  result: R
  event?: ThingEvent
}

/**
 * One change: its statements on `tx`. It may throw a OnePipeError (other
 * than a database one) only before it writes anything, since the
 * transaction it shares goes on without it.
 */
export type Change<R> = (tx: Queryable) => Promise<Changed<R>>

/**
 * A create, which can also go in one statement with the other creates of
 * its batch (Flow.appendAfter): the Thing to insert, what to answer from its
 * inserted row, and the error when its id is taken.
 */
export interface CreateChange<R> {
  thing: NewThing
  finish(row: Record<string, unknown>): R
  conflict(): Error
}

interface Pending {
  /** The Thing it changes: changes of one Thing run one after another, in the order they were issued. */
  key: string
  change: Change<unknown>
  create: CreateChange<unknown> | undefined
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
}

type Outcome = { ok: Changed<unknown> } | { failed: unknown }

/** Whether an error leaves the transaction usable: a refusal the change's own code made, not a failed statement. */
function isRefusal(e: unknown): boolean {
  return e instanceof OnePipeError && !(e instanceof DatabaseError) && !(e instanceof TransportError)
}

/** The queue of one store's changes, one transaction in flight at a time. */
export class ChangeQueue {
  #queue: Pending[] = []
  #flushing = false

  constructor(
    private readonly database: () => Promise<Database>,
    private readonly events: () => Flow<ThingEvent>,
    /** Inserts new Things and appends their events in one statement; answers the rows inserted. */
    private readonly creates: (things: NewThing[]) => Promise<Record<string, unknown>[]>,
  ) {}

  /**
   * Runs `change` of the Thing `key` in the next transaction; resolves with
   * its result once that transaction committed. A batch made only of creates
   * (given `create`) goes as one statement instead, with all their events:
   * no transaction round trips.
   */
  run<R>(key: string, change: Change<R>, create?: CreateChange<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ key, change, create, resolve: resolve as (v: unknown) => void, reject })
      if (!this.#flushing) void this.#flush()
    })
  }

  async #flush(): Promise<void> {
    this.#flushing = true
    try {
      for (let batch = await this.#next(); batch.length > 0; batch = await this.#next()) await this.#settle(batch)
    } finally {
      this.#flushing = false
    }
  }

  /** The next changes to run: every one issued until the event loop turns (this tick's join, not wait), at most 100. */
  async #next(): Promise<Pending[]> {
    await new Promise((r) => setImmediate(r))
    return this.#queue.splice(0, MAX_BATCH)
  }

  /** Runs a batch and answers each change; after a failed statement, each change again alone. */
  async #settle(batch: Pending[]): Promise<void> {
    if (batch.every((p) => p.create !== undefined)) return this.#createAll(batch)
    let outcomes: Outcome[]
    try {
      outcomes = await this.#commit(batch)
    } catch (e) {
      if (batch.length === 1) return batch[0]?.reject(e)
      // A statement failed and took the others' work with it: each alone now, so it fails only itself.
      for (const p of batch) await this.#settle([p])
      return
    }
    batch.forEach((p, i) => {
      const o = outcomes[i] as Outcome
      if ('ok' in o) p.resolve(o.ok.result)
      else p.reject(o.failed)
    })
  }

  /** A batch of creates as one statement; after a failed statement, each create again alone. */
  async #createAll(batch: Pending[]): Promise<void> {
    let rows: Record<string, unknown>[]
    try {
      await this.database()
      rows = await this.creates(batch.map((p) => (p.create as CreateChange<unknown>).thing))
    } catch (e) {
      if (batch.length === 1) return batch[0]?.reject(e)
      for (const p of batch) await this.#createAll([p])
      return
    }
    const made = new Map(rows.map((r) => [`${String(r.type)}\u0000${String(r.id)}`, r]))
    const seen = new Set<string>()
    for (const p of batch) {
      const c = p.create as CreateChange<unknown>
      const key = `${c.thing.type}\u0000${c.thing.id}`
      const row = seen.has(key) ? undefined : made.get(key)
      seen.add(key)
      // Not returned: the id was taken (before, or by an earlier create of this batch).
      if (row) p.resolve(c.finish(row))
      else p.reject(c.conflict())
    }
  }

  /**
   * One transaction: the changes at once (one Thing's in order, since an
   * update reads before it writes), then all their events in one append, in
   * the order the changes were issued. Statements go out sorted by Thing,
   * so two instances' transactions lock rows in the same order and never
   * deadlock on each other.
   */
  async #commit(batch: Pending[]): Promise<Outcome[]> {
    const db = await this.database()
    return db.transaction(async (tx) => {
      const last = new Map<string, Promise<unknown>>()
      const sorted = batch.map((p, i) => ({ p, i })).sort((a, b) => (a.p.key < b.p.key ? -1 : a.p.key > b.p.key ? 1 : a.i - b.i))
      const runs: Promise<Outcome>[] = new Array<Promise<Outcome>>(batch.length)
      for (const { p, i } of sorted) {
        const before = last.get(p.key)
        const run = (async (): Promise<Outcome> => {
          await before
          try {
            return { ok: await p.change(tx) }
          } catch (e) {
            if (!isRefusal(e)) throw e
            return { failed: e }
          }
        })()
        last.set(p.key, run.catch(() => undefined))
        runs[i] = run
      }
      // Every statement is answered before the transaction ends, whatever failed.
      const settled = await Promise.allSettled(runs)
      const broken = settled.find((r) => r.status === 'rejected')
      if (broken) throw broken.reason
      const outcomes = settled.map((r) => (r as PromiseFulfilledResult<Outcome>).value)
      const events = outcomes.flatMap((o) => ('ok' in o && o.ok.event ? [o.ok.event] : []))
      // Last, just before the commit: the flow's counter row is locked from here until then.
      if (events.length > 0) await this.events().appendAllIn(tx, events)
      return outcomes
    })
  }
}
