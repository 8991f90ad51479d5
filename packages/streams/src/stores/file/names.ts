import { createHash } from 'node:crypto'
import { StreamBadRequestError } from '../types.js'

/** Log file suffix; temp files (creation, reset) end in `.tmp` and are removed on open. */
export const LOG_SUFFIX = '.log'
export const TMP_SUFFIX = '.tmp'

/** File names stay well under the usual 255-byte limit. */
const MAX_NAME = 180

/**
 * The file name of a stream's log. Only `[A-Za-z0-9_-]` survive as is;
 * every other byte becomes `%HH`, so `..`, `/`, `\`, NUL or a drive letter
 * can never reach the filesystem as such. Long paths use a hash instead
 * (the real path is in the log's HEADER frame, so names never need decoding).
 *
 * @example
 * ```ts
 * logFileName('flows/orders') // 'flows%2Forders.log'
 * ```
 */
export function logFileName(path: string): string {
  if (path.length === 0 || path.includes('\0')) {
    throw new StreamBadRequestError('STREAM_BAD_PATH', 'A stream path must be non-empty and must not contain NUL bytes.')
  }
  let out = ''
  for (const byte of Buffer.from(path, 'utf8')) {
    const c = String.fromCharCode(byte)
    out += /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
    if (out.length > MAX_NAME) break
  }
  if (out.length > MAX_NAME) out = `~${createHash('sha256').update(path).digest('hex')}`
  return out + LOG_SUFFIX
}
