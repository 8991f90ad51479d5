import { ConfigError } from '../errors/index.js'

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
}

/** A duration as milliseconds or a string such as `'30s'`, `'5m'`, `'1h30m'`. */
export type Duration = number | string

/**
 * Parses a {@link Duration} to milliseconds. Throws a ConfigError naming the
 * bad value, so a typo in `.timeout('3o s')` fails at build time.
 *
 * @example
 * ```ts
 * parseDuration('1h30m') // 5_400_000
 * parseDuration(250)     // 250
 * ```
 */
export function parseDuration(d: Duration): number {
  if (typeof d === 'number') {
    if (!Number.isFinite(d) || d < 0) throw new ConfigError('INVALID_DURATION', `Duration ${d} must be a finite number of milliseconds >= 0`)
    return d
  }
  const s = d.trim()
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s)
  const re = /(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d|w)/gy
  let total = 0
  let consumed = 0
  for (const m of s.matchAll(re)) {
    const unit = UNITS[m[2] ?? '']
    if (unit === undefined) break
    total += Number(m[1]) * unit
    consumed = (m.index ?? 0) + m[0].length
  }
  if (consumed !== s.length || consumed === 0) {
    throw new ConfigError('INVALID_DURATION', `Cannot read duration "${d}"; write it like 500ms, 30s, 5m, 1h30m or 2d`)
  }
  return total
}
