import { ConfigError } from '@onepipe/core'

/** A byte size as a number or a string such as `'512kb'`, `'10mb'`. */
export type Size = number | string

const UNITS: Record<string, number> = { b: 1, kb: 1024, k: 1024, mb: 1024 ** 2, m: 1024 ** 2, gb: 1024 ** 3, g: 1024 ** 3 }

/**
 * Parses a {@link Size} to bytes.
 *
 * @example
 * ```ts
 * parseSize('10mb') // 10485760
 * ```
 */
export function parseSize(s: Size): number {
  if (typeof s === 'number') {
    if (!Number.isInteger(s) || s <= 0) throw new ConfigError('INVALID_SIZE', `Size ${s} must be a positive whole number of bytes`)
    return s
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?b?|[kmg])\s*$/i.exec(s)
  const unit = UNITS[(m?.[2] ?? '').toLowerCase() || 'b']
  if (!m || unit === undefined) throw new ConfigError('INVALID_SIZE', `Cannot read size "${s}"; write it like 512kb or 10mb`)
  return Math.floor(Number(m[1]) * unit)
}
