// Blueprint files are recognised by their first bytes: a name or a
// Content-Type header is whatever the client says, the bytes are what the
// analysis will read.
import type { BlueprintMime } from './contracts.js'

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
const JPEG = [0xff, 0xd8, 0xff]
const PDF = [0x25, 0x50, 0x44, 0x46, 0x2d] // %PDF-

const startsWith = (bytes: Uint8Array, sig: readonly number[]) => bytes.length >= sig.length && sig.every((b, i) => bytes[i] === b)

/**
 * The blueprint type of `bytes` by their magic number, or undefined when
 * they are none of PDF, PNG and JPEG.
 *
 * @example
 * ```ts
 * sniffBlueprint(new TextEncoder().encode('%PDF-1.7 …')) // 'application/pdf'
 * ```
 */
export function sniffBlueprint(bytes: Uint8Array): BlueprintMime | undefined {
  if (startsWith(bytes, PDF)) return 'application/pdf'
  if (startsWith(bytes, PNG)) return 'image/png'
  if (startsWith(bytes, JPEG)) return 'image/jpeg'
  return undefined
}

/**
 * A file name safe to store and to show: the last path segment, control
 * characters removed, at most 200 characters; `blueprint` when nothing is left.
 *
 * @example
 * ```ts
 * cleanFilename('C:\\plans\\level 1.pdf') // 'level 1.pdf'
 * ```
 */
export function cleanFilename(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? ''
  const clean = base
    .replace(/[\u0000-\u001f\u007f]/g, '')
    .toWellFormed()
    .trim()
    .slice(0, 200)
  return clean === '' ? 'blueprint' : clean
}

/**
 * Database bytes as a Buffer: PostgreSQL (postgres.js) answers bytea as a
 * Buffer, embedded PGlite as a Uint8Array.
 *
 * @example
 * ```ts
 * const pdf = asBuffer(row.pdf)
 * ```
 */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
