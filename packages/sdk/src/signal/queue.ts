import { ConflictError, TimeoutError, engineMetrics } from '@onepipe/core'
import type { SignalStore, VersionedValue } from './stores.js'

/** Write attempts of one batch before it gives up with a ConflictError (each lost to a write that succeeded). */
const MAX_ATTEMPTS = 1000
/** Longest an async updater may take: every update queued behind it in this process waits for it. */
export const UPDATER_TIMEOUT_MS = 10_000

/** The value as JSON text, with the version that wrote it (0: never written). */
interface Known {
  version: number
  text: string
}

interface Pending {
  fn: (value: unknown) => unknown
  resolve: (r: VersionedValue) => void
  reject: (e: unknown) => void
}

/** How one updater of a round ended: its value and its place among the applied ones, or what it threw. */
type Outcome = { ok: true; value: unknown; index: number } | { ok: false; error: unknown }

interface Applied {
  outcomes: Outcome[]
  /** JSON text after the last applied updater. */
  text: string
  /** How many updaters applied (each takes one version). */
  count: number
}

/** What a {@link UpdateQueue} needs from its signal. */
export interface UpdateQueueOptions {
  name: string
  store: () => SignalStore
  /** The default value as JSON text. */
  initialText: () => string
  /** The schema and OnePipe's value rule: the value to keep and its JSON text, or a ValidationError. */
  check: (value: unknown) => Promise<{ value: unknown; text: string }>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * @internal One process's pending updates of one signal, written in rounds:
 * one round in flight at a time; a round takes every updater queued so far,
 * applies them in order to one read of the value (each sees the previous
 * one's result) and writes the result once, as one compare-and-swap on the
 * version. A lost swap re-reads and re-applies the whole batch, never part
 * of it, so each updater's result is applied exactly once, to the value it
 * saw. Contention then costs one write per round per process instead of
 * one retry per update, and the more updates wait, the more one write
 * carries.
 */
export class UpdateQueue {
  readonly #o: UpdateQueueOptions
  #pending: Pending[] = []
  #running = false
  #known: Known | undefined
  readonly #updates: { inc(n?: number): void }
  readonly #casRetries: { inc(n?: number): void }

  constructor(o: UpdateQueueOptions) {
    this.#o = o
    this.#updates = engineMetrics.signalUpdates.with(o.name)
    this.#casRetries = engineMetrics.signalCasRetries.with(o.name)
  }

  /**
   * Remembers a version this process wrote, so the next round can try its
   * swap without reading first (a stale guess only costs the lost swap).
   */
  saw(version: number, text: string): void {
    if (!this.#known || version > this.#known.version) this.#known = { version, text }
  }

  push(fn: (value: unknown) => unknown): Promise<VersionedValue> {
    return new Promise<VersionedValue>((resolve, reject) => {
      this.#pending.push({ fn, resolve, reject })
      if (this.#running) return
      this.#running = true
      // Start after the current tick, so every update issued in it joins the first round.
      queueMicrotask(() => void this.#drain())
    })
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0)
      try {
        await this.#round(batch)
      } catch (e) {
        // Nothing of this batch was written (or it is unknown whether it was): every caller hears why.
        for (const p of batch) p.reject(e)
      }
    }
    this.#running = false
  }

  async #round(batch: Pending[]): Promise<void> {
    const store = this.#o.store()
    // A remembered value may be stale: only a swap or a read made during this round proves what the value is now.
    let fresh = !this.#known
    let cur = this.#known ?? this.#toKnown(await store.read())
    for (let attempt = 1; ; attempt++) {
      const applied = await this.#apply(batch, cur.text)
      if (applied.count === 0 && !fresh) {
        // Every updater failed on a value that may be old: they must fail on the current one, if at all.
        cur = this.#toKnown(await store.read())
        fresh = true
        continue
      }
      if (applied.count === 0) return this.#settle(batch, applied, cur.version)
      const r = await store.cas(cur.version, applied.text, applied.count)
      if (r.ok) {
        this.saw(r.version, applied.text)
        this.#updates.inc(applied.count)
        return this.#settle(batch, applied, cur.version)
      }
      this.#casRetries.inc()
      if (attempt >= MAX_ATTEMPTS) throw new ConflictError('SIGNAL_CONTENDED', `Signal "${this.#o.name}" changed under every one of ${MAX_ATTEMPTS} write attempts; reduce write contention or retry later`)
      cur = this.#toKnown(r.current ?? (await store.read()))
      fresh = true
      // Every lost swap lost to a write that succeeded, so retry at once; only a
      // process that keeps losing spreads out, in case many contend in lock step.
      if (attempt >= 3) await sleep(Math.random() * Math.min(2 ** (attempt - 3), 20))
    }
  }

  #toKnown(v: VersionedValue | undefined): Known {
    return v ? { version: v.version, text: JSON.stringify(v.value) } : { version: 0, text: this.#o.initialText() }
  }

  async #apply(batch: Pending[], text: string): Promise<Applied> {
    const outcomes: Outcome[] = []
    let count = 0
    for (const p of batch) {
      try {
        // A fresh copy each: an updater that changes its argument in place
        // and then throws must leave nothing behind for the next one.
        const { value, text: next } = await this.#o.check(await this.#call(p.fn, JSON.parse(text)))
        text = next
        outcomes.push({ ok: true, value, index: ++count })
      } catch (error) {
        outcomes.push({ ok: false, error })
      }
    }
    return { outcomes, text, count }
  }

  async #call(fn: (value: unknown) => unknown, value: unknown): Promise<unknown> {
    const r = fn(value)
    if (typeof (r as { then?: unknown } | null)?.then !== 'function') return r
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([
        r as PromiseLike<unknown>,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new TimeoutError('SIGNAL_UPDATER_TIMEOUT', `An updater of signal "${this.#o.name}" took over ${UPDATER_TIMEOUT_MS} ms; updaters must be quick, pure functions of the value`)),
            UPDATER_TIMEOUT_MS,
          )
        }),
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  #settle(batch: Pending[], applied: Applied, base: number): void {
    batch.forEach((p, i) => {
      const o = applied.outcomes[i]!
      if (o.ok) p.resolve({ value: o.value, version: base + o.index })
      else p.reject(o.error)
    })
  }
}
