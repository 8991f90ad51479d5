import type { Database, Logger } from '@onepipe/core'
import { acquireLock, releaseLock, renewLock, type LockState } from './sql.js'

/**
 * Lease timings; short values are for tests.
 *
 * @example
 * ```ts
 * Cron.create('t').schedule('* * * * * *').lease({ ttlMs: 3000, renewMs: 1000 })
 * ```
 */
export interface LeaseTimings {
  /** How long a lease lasts without renewal (default 30 s). */
  ttlMs: number
  /** How often the holder renews it (default 10 s). */
  renewMs: number
}

/**
 * One instance's view of a job's lease. The database decides who holds it;
 * the fencing token (bumped on every acquisition) is sent with every renew,
 * release and claim, so a process that lost the lease (paused, partitioned)
 * can never renew it, release someone else's, or claim a tick with it.
 */
export class Lease {
  /** Set while this instance believes it holds the lease. */
  token: number | undefined
  /** Database clock minus local clock, from the last answer that carried `now()`. */
  skewMs = 0
  #expiresLocal = 0
  #timer: NodeJS.Timeout | undefined
  #renewing: Promise<void> | undefined
  readonly #db: Database
  readonly #job: string
  readonly #instance: string
  readonly #t: LeaseTimings
  readonly #log: Logger
  readonly #onLost: () => void

  constructor(db: Database, job: string, instance: string, t: LeaseTimings, log: Logger, onLost: () => void) {
    this.#db = db
    this.#job = job
    this.#instance = instance
    this.#t = t
    this.#log = log
    this.#onLost = onLost
  }

  /** Now on the database clock, estimated locally. */
  dbNowMs(): number {
    return Date.now() + this.skewMs
  }

  /** Updates the clock estimate from a database `now()` seen between two local instants. */
  observe(now: Date, t0: number, t1: number): void {
    this.skewMs = now.getTime() - (t0 + t1) / 2
  }

  /** Tries to take the lease (no-op answer when already held). */
  async tryAcquire(): Promise<LockState> {
    const t0 = Date.now()
    const st = await acquireLock(this.#db, this.#job, this.#instance, this.#t.ttlMs)
    if (st.now.getTime() > 0) this.observe(st.now, t0, Date.now())
    if (st.acquired) {
      this.token = st.fencingToken
      this.#expiresLocal = st.expiresAt.getTime() - this.skewMs
      this.#schedule()
    }
    return st
  }

  #schedule(): void {
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#renewing = this.#renew()
    }, this.#t.renewMs)
  }

  async #renew(): Promise<void> {
    const token = this.token
    if (token === undefined) return
    try {
      const t0 = Date.now()
      const r = await renewLock(this.#db, this.#job, this.#instance, token, this.#t.ttlMs)
      if (this.token !== token) return
      if (r) {
        this.observe(r.now, t0, Date.now())
        this.#expiresLocal = r.expiresAt.getTime() - this.skewMs
        this.#schedule()
      } else {
        this.#log.warn({ job: this.#job, fencingToken: token }, 'cron lease lost (expired or taken over); this instance stops running ticks')
        this.#lose()
      }
    } catch (err) {
      if (this.token !== token) return
      // Cannot reach the database: keep trying until the lease would have run out, then stand down.
      this.#log.error({ err, job: this.#job }, 'cron lease renewal failed')
      if (Date.now() >= this.#expiresLocal) this.#lose()
      else this.#schedule()
    }
  }

  #lose(): void {
    clearTimeout(this.#timer)
    this.token = undefined
    this.#onLost()
  }

  /** Forgets the lease locally (after a fenced claim showed it is gone). */
  drop(): void {
    if (this.token !== undefined) this.#lose()
  }

  /** Stops renewing without releasing: the lease runs out by itself (used while a run may still be going). */
  async abandon(): Promise<void> {
    clearTimeout(this.#timer)
    this.token = undefined
    await this.#renewing
  }

  /** Gives the lease back at once, only if it is still ours with our token. */
  async release(): Promise<void> {
    const token = this.token
    clearTimeout(this.#timer)
    await this.#renewing
    this.token = undefined
    if (token !== undefined) await releaseLock(this.#db, this.#job, this.#instance, token)
  }
}
