import type { Database, Logger } from '@onepipe/core'
import { READY_CHANNEL } from '@onepipe/sdk'
import type { Job, StageEngine } from '../engine/engine.js'

/**
 * How jobs reach parked pulls: PostgreSQL (LISTEN/NOTIFY, the default) or
 * RabbitMQ (`RABBITMQ_URL`). Either way the claim in PostgreSQL decides who
 * gets a stage; dispatch only says when and where to look.
 *
 * @example
 * ```ts
 * const jobs = await dispatch.pull(appId, ['vision.analyze'], 8, 20_000, workerId, signal)
 * ```
 */
export interface Dispatch {
  start(): Promise<void>
  stop(): Promise<void>
  /** Pulls parked in this process. */
  readonly parked: number
  /** Up to `max` jobs as soon as there are some; [] after `waitMs` or when `signal` aborts. */
  pull(appId: string, handlers: readonly string[], max: number, waitMs: number, workerId: string | null, signal: AbortSignal): Promise<Job[]>
}

/** One parked pull. */
interface Waiter {
  appId: string
  handlers: ReadonlySet<string>
  max: number
  workerId: string | null
  /** Set when a notification for one of its handlers arrived while it was claiming. */
  nudged: boolean
  wake: () => void
}

/**
 * PostgreSQL dispatch: long-polls park in memory, one LISTEN connection per
 * process wakes them (`appId\thandler` payloads), and claims run one at a
 * time per process, so 200 parked pulls hold the LISTEN connection and at
 * most one pooled connection, never one each. A notification only says
 * "look again": the claim (FOR UPDATE SKIP LOCKED) decides who gets a job,
 * so N replicas all woken by one NOTIFY still hand it out once.
 *
 * A NOTIFY sent while the LISTEN connection was down is lost: after a
 * reconnect every parked pull claims again; a slow periodic re-check covers
 * anything else (a stage made ready by a replica that died before NOTIFY).
 */
export class PostgresDispatch implements Dispatch {
  readonly #db: Database
  readonly #engine: StageEngine
  readonly #log: Logger
  readonly #waiters = new Set<Waiter>()
  readonly #recheckMs: number
  #unlisten: (() => Promise<void>) | undefined
  #recheck: NodeJS.Timeout | undefined
  /** Claims queue here: one runs at a time in this process. */
  #queue: Promise<unknown> = Promise.resolve()

  constructor(db: Database, engine: StageEngine, o: { log: Logger; recheckMs?: number }) {
    this.#db = db
    this.#engine = engine
    this.#log = o.log
    this.#recheckMs = o.recheckMs ?? 5000
  }

  async start(): Promise<void> {
    this.#unlisten = await this.#db.listen(READY_CHANNEL, (payload) => this.#notified(payload), { onReconnect: () => this.#wakeAll() })
    this.#recheck = setInterval(() => this.#wakeAll(), this.#recheckMs)
    this.#recheck.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.#recheck)
    this.#recheck = undefined
    this.#wakeAll()
    await this.#unlisten?.()
    this.#unlisten = undefined
  }

  /** Pulls waiting in this process (for the dashboard and tests). */
  get parked(): number {
    return this.#waiters.size
  }

  /**
   * Answers up to `max` jobs for `handlers` as soon as there are some, or
   * [] after `waitMs` or when `signal` aborts (shutdown, client gone).
   */
  async pull(appId: string, handlers: readonly string[], max: number, waitMs: number, workerId: string | null, signal: AbortSignal): Promise<Job[]> {
    const deadline = Date.now() + waitMs
    let wake: () => void = () => undefined
    const w: Waiter = { appId, handlers: new Set(handlers), max, workerId, nudged: false, wake: () => wake() }
    // Registered before the first claim: a NOTIFY that lands between an empty claim and parking is not lost.
    this.#waiters.add(w)
    try {
      for (;;) {
        w.nudged = false
        const jobs = await this.#claim(appId, handlers, max, workerId)
        // A full batch may have left more behind: the next parked pull looks too.
        if (jobs.length === max) for (const h of handlers) this.#nudgeOne(appId, h, w)
        if (jobs.length > 0 || signal.aborted) return jobs
        const left = deadline - Date.now()
        if (left <= 0) return []
        if (w.nudged) continue
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, left)
          const onAbort = (): void => done()
          signal.addEventListener('abort', onAbort, { once: true })
          function done(): void {
            clearTimeout(timer)
            signal.removeEventListener('abort', onAbort)
            resolve()
          }
          wake = done
        })
        wake = () => undefined
        if (signal.aborted) return []
      }
    } finally {
      this.#waiters.delete(w)
    }
  }

  #claim(appId: string, handlers: readonly string[], max: number, workerId: string | null): Promise<Job[]> {
    const run = this.#queue.then(() => this.#engine.claim(appId, handlers, max, workerId))
    this.#queue = run.catch(() => undefined)
    return run
  }

  #notified(payload: string): void {
    const tab = payload.indexOf('\t')
    if (tab < 0) return
    this.#nudgeOne(payload.slice(0, tab), payload.slice(tab + 1), undefined)
  }

  /**
   * One notification wakes one parked pull (the longest waiting), not all of
   * them: it claims a batch, and if the batch was full it passes the turn on.
   * So 200 parked pulls and one new job make one claim, not 200.
   */
  #nudgeOne(appId: string, handler: string, except: Waiter | undefined): void {
    for (const w of this.#waiters) {
      if (w === except || w.nudged || w.appId !== appId || !w.handlers.has(handler)) continue
      w.nudged = true
      w.wake()
      return
    }
  }

  /** After a reconnect or on the periodic re-check: the first parked pull of each kind looks again. */
  #wakeAll(): void {
    const seen = new Set<string>()
    for (const w of this.#waiters) {
      const kind = `${w.appId}\t${[...w.handlers].sort().join(',')}`
      if (seen.has(kind)) continue
      seen.add(kind)
      w.nudged = true
      w.wake()
    }
  }

  /** @internal */
  get log(): Logger {
    return this.#log
  }
}
