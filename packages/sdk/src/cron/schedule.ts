import { Cron as Croner } from 'croner'
import { ConfigError } from '@onepipe/core'

/**
 * A parsed cron expression in a timezone: 5 fields (minute precision) or 6
 * (seconds first), names (`MON`, `JAN`), ranges, steps, `L`, nicknames
 * (`@daily`, `@hourly`, `@weekly`, `@monthly`, `@yearly`). When both
 * day-of-month and day-of-week are restricted a day matches if EITHER does,
 * as classic cron defines it. DST: a local time skipped by a spring-forward
 * runs one hour later that day; a local time repeated by a fall-back runs
 * once (the first occurrence).
 *
 * @example
 * ```ts
 * const s = new CronSchedule('30 2 * * *', 'Europe/Paris')
 * s.nextN(3, new Date('2025-03-29T00:00:00Z')) // the 30th runs at 03:30 local (02:30 does not exist)
 * ```
 */
export class Schedule {
  readonly expression: string
  readonly timezone: string | undefined
  readonly #c: Croner

  constructor(expression: string, timezone: string | undefined) {
    this.expression = expression
    this.timezone = timezone
    try {
      // legacyMode: day-of-month OR day-of-week (croner's default is the same; stated so an upgrade cannot change it).
      this.#c = new Croner(expression, { mode: '5-or-6-parts', legacyMode: true, paused: true, ...(timezone ? { timezone } : {}) })
      // An unknown timezone only shows when a date is computed.
      this.#c.nextRun(new Date(0))
    } catch (e) {
      throw new ConfigError('CRON_BAD_SCHEDULE', `Cron schedule "${expression}"${timezone ? ` in timezone "${timezone}"` : ''} is invalid: ${(e as Error).message}. Use 5 or 6 fields (e.g. "0 9 * * 1-5"), a nickname such as "@daily", and an IANA timezone such as "Europe/Paris".`)
    }
  }

  /** The first tick strictly after `after`, or null when the expression never fires again. */
  next(after: Date): Date | null {
    return this.#c.nextRun(after)
  }

  /** The next `n` ticks strictly after `after`. */
  nextN(n: number, after: Date): Date[] {
    return this.#c.nextRuns(n, after)
  }

  /**
   * Ticks in (`after`, `upTo`], oldest first, at most `max` of them (the most
   * recent ones); `dropped` says older ones were left out.
   */
  due(after: Date, upTo: Date, max: number): { ticks: Date[]; dropped: boolean } {
    if (max <= 0) return { ticks: [], dropped: false }
    // previousRuns drops the milliseconds of its reference and excludes that whole second, so look
    // from one second ahead and keep what is not later than upTo.
    const recent = this.#c
      .previousRuns(max + 2, new Date(upTo.getTime() + 1000))
      .filter((t) => t.getTime() > after.getTime() && t.getTime() <= upTo.getTime())
    const dropped = recent.length > max
    return { ticks: recent.slice(0, max).reverse(), dropped }
  }
}
