import { assertDatabase, ConfigError, parseDuration, registerPrimitive, type Database, type Duration } from '@onepipe/core'
import { Cron, type CronContext, type CronHandler, type WorkflowStarter } from './cron.js'
import type { LeaseTimings } from './lease.js'
import { Schedule } from './schedule.js'

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/

/**
 * Fluent configuration for a {@link Cron}.
 *
 * @example
 * ```ts
 * Cron.create('sync').schedule('*\/5 * * * *').handler(() => sync()).build()
 * ```
 */
export class CronBuilder {
  #name: string
  #expr: string | undefined
  #tz: string | undefined
  #catchUp = false
  #maxCatchUp = 10
  #overlap = false
  #db: Database | undefined
  #lease: LeaseTimings = { ttlMs: 30_000, renewMs: 10_000 }
  #shutdownMs = 20_000
  #retentionMs = 7 * 86_400_000
  #handler: CronHandler | undefined

  constructor(name: string) {
    if (!NAME.test(name)) throw new ConfigError('CRON_BAD_NAME', `Cron name "${name}" is invalid: use letters, digits, "_", "-", "." or ":" (up to 128)`)
    this.#name = name
  }

  /** The cron expression (5 or 6 fields, or a nickname such as `@daily`). @example `.schedule('0 9 * * 1-5')` */
  schedule(expression: string): this {
    this.#expr = expression
    return this
  }

  /** IANA timezone the expression is read in (default UTC). @example `.timezone('Europe/Paris')` */
  timezone(tz: string): this {
    this.#tz = tz
    return this
  }

  /** Run ticks missed while no instance was running (bounded by {@link maxCatchUp}). @example `.catchUp(true)` */
  catchUp(on: boolean): this {
    this.#catchUp = on
    return this
  }

  /** At most this many missed ticks are caught up at once (the most recent ones; default 10). @example `.maxCatchUp(3)` */
  maxCatchUp(n: number): this {
    if (!Number.isInteger(n) || n < 1) throw new ConfigError('CRON_BAD_OPTION', `maxCatchUp must be a positive integer, got ${n}`)
    this.#maxCatchUp = n
    return this
  }

  /** Let a tick start while the previous run is still going (default false). @example `.overlap(true)` */
  overlap(on: boolean): this {
    this.#overlap = on
    return this
  }

  /** The database holding the job's lease and executions (default: the app's, under `serve()`). @example `.db(db)` */
  db(db: Database): this {
    this.#db = assertDatabase(db, `Cron "${this.#name}"`)
    return this
  }

  /** Lease timings (default 30 s TTL renewed every 10 s); the renew interval must be well under the TTL. @example `.lease({ ttlMs: 3000, renewMs: 1000 })` */
  lease(t: LeaseTimings): this {
    if (!(t.renewMs > 0 && t.ttlMs >= 2 * t.renewMs)) throw new ConfigError('CRON_BAD_OPTION', `lease: renewMs (${t.renewMs}) must be positive and at most half of ttlMs (${t.ttlMs})`)
    this.#lease = t
    return this
  }

  /** How long stop() waits for a running job (default 20 s, inside serve()'s 30 s shutdown budget). @example `.shutdownTimeout(10_000)` */
  shutdownTimeout(ms: number): this {
    this.#shutdownMs = ms
    return this
  }

  /** How long finished runs stay in history (default 7 days; the newest tick is always kept). @example `.retention('30d')` */
  retention(d: Duration): this {
    this.#retentionMs = parseDuration(d)
    return this
  }

  /** The job itself. @example `.handler(async (ctx) => purge(ctx.scheduledTime))` */
  handler(fn: CronHandler): this {
    this.#handler = fn
    return this
  }

  /**
   * Starts a workflow run per tick, with the id `cron:{job}:{scheduled ISO time}`
   * so a repeated start of the same tick is the same run.
   *
   * @example
   * ```ts
   * Cron.create('billing').schedule('0 0 1 * *').workflow(monthlyBilling, (ctx) => ({ month: ctx.scheduledTime })).build()
   * ```
   */
  workflow<I>(wf: WorkflowStarter<I>, input: (ctx: CronContext) => I): this {
    this.#handler = async (ctx) => {
      const workflowId = `cron:${ctx.jobName}:${ctx.scheduledTime.toISOString()}`
      await wf.start(input(ctx), { workflowId })
      return { workflowId }
    }
    return this
  }

  /** Validates and registers the job. @example `const job = builder.build()` */
  build(): Cron {
    if (!this.#expr) throw new ConfigError('CRON_NO_SCHEDULE', `Cron "${this.#name}" has no schedule: add .schedule('0 9 * * *')`)
    if (!this.#handler) throw new ConfigError('CRON_NO_HANDLER', `Cron "${this.#name}" has nothing to run: add .handler(fn) or .workflow(wf, input)`)
    const schedule = new Schedule(this.#expr, this.#tz)
    registerCron(this.#name, schedule, this.#catchUp, this.#maxCatchUp)
    return new Cron({
      name: this.#name,
      schedule,
      catchUp: this.#catchUp,
      maxCatchUp: this.#maxCatchUp,
      overlap: this.#overlap,
      db: this.#db,
      lease: this.#lease,
      shutdownMs: this.#shutdownMs,
      retentionMs: this.#retentionMs,
      handler: this.#handler,
    })
  }
}

function registerCron(name: string, s: Schedule, catchUp: boolean, maxCatchUp: number): void {
  registerPrimitive({ primitive: 'cron', name, infrastructure: ['postgresql'], config: { schedule: s.expression, timezone: s.timezone ?? 'UTC', catchUp, maxCatchUp } })
}
