// `$.every` and `$.at` words compile to cron expressions; anything else is an
// error when the handler is registered, never a schedule that never fires.
import { describe, expect, it } from 'vitest'
import { ConfigError, Cron, dayAt, everyN, Flow, parseTime, Semantic } from '@onepipe/sdk'

const source = { events: Flow.create('sched-src').build() as never, send: async () => undefined }
const crons = ($: Semantic) => $.parts.filter((p): p is Cron => p instanceof Cron).map((c) => c.schedule)

describe('times and schedules', () => {
  it('reads the time forms people write', () => {
    expect(parseTime('9am')).toEqual({ hour: 9, minute: 0 })
    expect(parseTime('9:30pm')).toEqual({ hour: 21, minute: 30 })
    expect(parseTime('12am')).toEqual({ hour: 0, minute: 0 })
    expect(parseTime('12pm')).toEqual({ hour: 12, minute: 0 })
    expect(parseTime('noon')).toEqual({ hour: 12, minute: 0 })
    expect(parseTime('Midnight')).toEqual({ hour: 0, minute: 0 })
    expect(parseTime('18:05')).toEqual({ hour: 18, minute: 5 })
    for (const bad of ['13pm', '9:60am', '24:00', '0am', 'teatime', '', '9', '9:5pm']) expect(() => parseTime(bad), bad).toThrow(ConfigError)
  })

  it('compiles every word to its cron expression', () => {
    expect(dayAt('Monday', parseTime('9am'))).toBe('0 9 * * 1')
    expect(dayAt('day', parseTime('6pm'))).toBe('0 18 * * *')
    expect(dayAt('weekday', parseTime('9:30am'))).toBe('30 9 * * 1-5')
    expect(everyN(5, 'minutes')).toBe('*/5 * * * *')
    expect(everyN(1, 'hour')).toBe('0 * * * *')
    expect(everyN(2, 'hours')).toBe('0 */2 * * *')
    expect(everyN(10, 'seconds')).toBe('*/10 * * * * *')
    expect(() => everyN(7, 'minutes')).toThrow(/divides 60/)
    expect(() => everyN(0, 'minutes')).toThrow(ConfigError)
    expect(() => everyN(5, 'fortnights')).toThrow(ConfigError)
    expect(() => dayAt('Someday', parseTime('9am'))).toThrow(ConfigError)
  })

  it('$.every registers cron jobs; two handlers on one expression are two jobs that both run; bad words fail at registration', () => {
    const $ = Semantic.create('sched').source(source).build()
    $.every.Monday.at9am(() => 1)
    $.every.day.at('6pm')(() => 2)
    $.every.day.at('6pm')(() => 3)
    $.every.hour(() => 4)
    $.every(5).minutes(() => 5)
    $.every.weekday.at930am(() => 6)
    expect(crons($)).toEqual(['0 9 * * 1', '0 18 * * *', '0 18 * * *', '0 * * * *', '*/5 * * * *', '30 9 * * 1-5'])
    expect(new Set($.parts.filter((p) => p instanceof Cron).map((c) => c.name)).size).toBe(6)
    expect(() => $.every.Monday.at('25:00')(() => 0)).toThrow(ConfigError)
    expect(() => ($.every as unknown as Record<string, { at9am: (h: () => number) => void }>).Caturday!.at9am(() => 0)).toThrow(ConfigError)
    expect(() => $.every(7).minutes(() => 0)).toThrow(ConfigError)
    expect(() => $.at(new Date('nope'))).toThrow(ConfigError)
    expect(() => $.on.order!.created!(() => 0)).toThrow(/capitalized/)
    expect(() => $.on('Order.created.more', () => 0)).toThrow(ConfigError)
    $.on.Order!.created!(() => 0, { name: 'dup' })
    expect(() => $.on('Order.paid', () => 0, { name: 'dup' })).toThrow(/registered already/)
  })
})
