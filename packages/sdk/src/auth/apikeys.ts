import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'
const FORMAT = /^op_([a-z2-7]{8})_([A-Za-z0-9_-]{43})$/

/** 5 random bytes as 8 base32 letters: the visible part of a key, and how it is looked up. */
function newPrefix(): string {
  const b = randomBytes(5)
  let bits = 0
  let value = 0
  let out = ''
  for (const byte of b) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  return out
}

/**
 * The SHA-256 of a key, hex. A fast hash is right here, unlike for
 * passwords: a key holds 256 random bits, so there is nothing to guess
 * from a stolen hash, and it is checked on every request.
 */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

/**
 * A new API key `op_<prefix>_<secret>`: an 8-letter prefix to look it up
 * and recognise it by, and 32 random bytes (base64url).
 *
 * @example
 * ```ts
 * const { key, prefix, hash } = newApiKey() // key: op_k3v9x2qa_Yt4…; store prefix and hash only
 * ```
 */
export function newApiKey(): { key: string; prefix: string; hash: string } {
  const prefix = newPrefix()
  const key = `op_${prefix}_${randomBytes(32).toString('base64url')}`
  return { key, prefix, hash: hashApiKey(key) }
}

/** The prefix of a well-formed key, else undefined (checked before any lookup). */
export function apiKeyPrefix(key: string): string | undefined {
  return FORMAT.exec(key)?.[1]
}

/** Whether `key` hashes to `storedHex`, compared in constant time. */
export function apiKeyMatches(key: string, storedHex: string): boolean {
  const got = Buffer.from(hashApiKey(key), 'hex')
  const want = Buffer.from(storedHex, 'hex')
  return got.length === want.length && timingSafeEqual(got, want)
}
