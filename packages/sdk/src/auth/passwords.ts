import { randomBytes } from 'node:crypto'
import { hash, parseOptions, verify } from '@node-rs/argon2'
import { ValidationError } from '@onepipe/core'

/**
 * argon2id with the OWASP Password Storage Cheat Sheet's first
 * configuration: 19 MiB of memory, 2 passes, 1 lane (RFC 9106 argon2id,
 * 16-byte random salt, 32-byte tag).
 *
 * @example
 * ```ts
 * console.log(`hash: ${PASSWORD_HASH.algorithm} m=${PASSWORD_HASH.memoryKiB} KiB t=${PASSWORD_HASH.iterations}`)
 * ```
 */
export const PASSWORD_HASH = { algorithm: 'argon2id', memoryKiB: 19_456, iterations: 2, parallelism: 1 } as const

const OPTIONS = { algorithm: 2, memoryCost: PASSWORD_HASH.memoryKiB, timeCost: PASSWORD_HASH.iterations, parallelism: PASSWORD_HASH.parallelism } as const

/**
 * Shortest password accepted (OWASP ASVS 4.0 V2.1.1: at least 12 characters).
 *
 * @example
 * ```ts
 * if (pw.length < MIN_PASSWORD_LENGTH) showHint(`at least ${MIN_PASSWORD_LENGTH} characters`)
 * ```
 */
export const MIN_PASSWORD_LENGTH = 12
/** Longest password accepted: long passphrases are welcome, megabytes are not. */
export const MAX_PASSWORD_LENGTH = 1024

/**
 * Checks a new password: 12 to 1024 characters of valid Unicode (no
 * composition rules, as NIST SP 800-63B advises).
 *
 * @throws ValidationError naming `path`
 */
export function checkPassword(pw: unknown, path = 'password'): string {
  const fail = (message: string): never => {
    throw new ValidationError('password', [{ path, message }])
  }
  if (typeof pw !== 'string') return fail('must be a string')
  if (pw.length < MIN_PASSWORD_LENGTH || pw.length > MAX_PASSWORD_LENGTH) return fail(`must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters long`)
  if (!pw.isWellFormed() || pw.includes('\0')) return fail('must be valid Unicode text without NUL')
  return pw
}

/** The argon2id hash of a password, in PHC string form (`$argon2id$v=19$m=19456,t=2,p=1$…`). */
export function hashPassword(pw: string): Promise<string> {
  return hash(pw, OPTIONS)
}

/** Whether `pw` matches `stored`; a malformed stored hash matches nothing. */
export async function verifyPassword(stored: string, pw: string): Promise<boolean> {
  try {
    return await verify(stored, pw)
  } catch {
    return false
  }
}

/** Whether a stored hash was made with other parameters than today's, so a successful login should rehash it. */
export function needsRehash(stored: string): boolean {
  try {
    const o = parseOptions(stored)
    return (o.algorithm as number) !== OPTIONS.algorithm || o.memoryCost !== OPTIONS.memoryCost || o.timeCost !== OPTIONS.timeCost || o.parallelism !== OPTIONS.parallelism
  } catch {
    return true
  }
}

let dummy: Promise<string> | undefined

/**
 * Verifies `pw` against a hash of a random password with today's
 * parameters: a login for an unknown email does the same work as one with
 * a wrong password, so the time taken does not tell which it was.
 */
export async function verifyDummy(pw: string): Promise<void> {
  dummy ??= hashPassword(randomBytes(24).toString('base64url'))
  await verifyPassword(await dummy, pw)
}

/**
 * Checks an email address loosely (one `@`, no spaces, at most 254
 * characters, RFC 5321's limit); it is compared case-insensitively.
 *
 * @throws ValidationError naming `path`
 */
export function checkEmail(email: unknown, path = 'email'): string {
  if (typeof email !== 'string' || email.length > 254 || !/^[^\s@]+@[^\s@]+$/.test(email) || !email.isWellFormed() || email.includes('\0')) {
    throw new ValidationError('email', [{ path, message: 'must be an email address (name@domain, at most 254 characters)' }])
  }
  return email
}
