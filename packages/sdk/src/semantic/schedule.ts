// `$.every` and `$.at`: the scheduling words of the semantic layer, compiled
// to the cron expressions the Cron engine runs (exactly once per tick across
// instances). Every form is checked when the handler is registered.
import { ConfigError } from '@onepipe/core'

const DAYS: Record<string, string> = { sunday: '0', monday: '1', tuesday: '2', wednesday: '3', thursday: '4', friday: '5', saturday: '6' }
const UNITS = new Set(['second', 'seconds', 'minute', 'minutes', 'hour', 'hours', 'day', 'days'])

/**
 * A time of day as people write it: `9am`, `9:30pm`, `12am`, `noon`,
 * `midnight`, or 24-hour `18:00` / `7:05`. Answers hour and minute.
 *
 * @throws ConfigError `INVALID_TIME` naming the text and the accepted forms
 * @example
 * ```ts
 * parseTime('9:30pm') // { hour: 21, minute: 30 }
 * parseTime('noon')   // { hour: 12, minute: 0 }
 * ```
 */
export function parseTime(text: string): { hour: number; minute: number } {
  const t = String(text).trim().toLowerCase()
  if (t === 'noon') return { hour: 12, minute: 0 }
  if (t === 'midnight') return { hour: 0, minute: 0 }
  const ampm = /^(\d{1,2})(?::(\d{2}))?\s*(am|pm)$/.exec(t)
  if (ampm) {
    const h = Number(ampm[1])
    const m = Number(ampm[2] ?? '0')
    if (h >= 1 && h <= 12 && m <= 59) return { hour: (h % 12) + (ampm[3] === 'pm' ? 12 : 0), minute: m }
  }
  const h24 = /^(\d{1,2}):(\d{2})$/.exec(t)
  if (h24) {
    const h = Number(h24[1])
    const m = Number(h24[2])
    if (h <= 23 && m <= 59) return { hour: h, minute: m }
  }
  throw new ConfigError('INVALID_TIME', `"${text}" is not a time of day: write 9am, 9:30pm, noon, midnight or 24-hour 18:00`)
}

/** `at9am`, `at930pm`, `atnoon` as property names: the time after `at`. */
export function timeOfProperty(prop: string): { hour: number; minute: number } {
  const raw = prop.slice(2).toLowerCase()
  const compact = /^(\d{1,2})(\d{2})(am|pm)$/.exec(raw)
  return parseTime(compact ? `${compact[1]}:${compact[2]}${compact[3]}` : raw)
}

/**
 * The cron expression of a day word and a time: `day`/`everyday` every
 * day, `weekday` Monday to Friday, `weekend` Saturday and Sunday, or a day
 * name.
 *
 * @throws ConfigError `INVALID_SCHEDULE` for another word
 * @example
 * ```ts
 * dayAt('Monday', parseTime('9am')) // '0 9 * * 1'
 * ```
 */
export function dayAt(day: string, t: { hour: number; minute: number }): string {
  const d = day.toLowerCase()
  const dow = d === 'day' || d === 'everyday' ? '*' : d === 'weekday' ? '1-5' : d === 'weekend' ? '0,6' : DAYS[d]
  if (dow === undefined) throw new ConfigError('INVALID_SCHEDULE', `$.every.${day}: write a day name (Monday…Sunday), day, weekday or weekend`)
  return `${t.minute} ${t.hour} * * ${dow}`
}

/**
 * The cron expression of "every n units": seconds (6-part cron), minutes,
 * hours or days, n dividing its unit evenly so ticks stay regular.
 *
 * @throws ConfigError `INVALID_SCHEDULE` for a unit or n that does not fit
 * @example
 * ```ts
 * everyN(5, 'minutes') // '*\/5 * * * *'
 * everyN(1, 'hour')    // '0 * * * *'
 * ```
 */
export function everyN(n: number, unit: string): string {
  if (!UNITS.has(unit)) throw new ConfigError('INVALID_SCHEDULE', `$.every(${n}).${unit}: the unit is seconds, minutes, hours or days`)
  const u = unit.replace(/s$/, '')
  const max = u === 'second' || u === 'minute' ? 60 : u === 'hour' ? 24 : 31
  if (typeof n !== 'number') throw new ConfigError('INVALID_SCHEDULE', `$.every(${JSON.stringify(n) ?? 'undefined'}).${unit}: n must be a number (got ${n === undefined ? 'nothing' : typeof n}), e.g. $.every(5).${unit}`)
  if (!Number.isInteger(n) || n < 1 || n > max || (u !== 'day' && max % n !== 0)) {
    throw new ConfigError('INVALID_SCHEDULE', `$.every(${n}).${unit}: n must be a whole number from 1 to ${max}${u !== 'day' ? ` that divides ${max}` : ''}`)
  }
  const every = n === 1 ? '*' : `*/${n}`
  if (u === 'second') return `${every} * * * * *`
  if (u === 'minute') return `${every} * * * *`
  if (u === 'hour') return `0 ${every} * * *`
  return `0 0 ${every} * *`
}
