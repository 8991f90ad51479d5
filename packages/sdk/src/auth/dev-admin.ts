import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Database } from '@onepipe/core'

/**
 * Where the development admin's password is kept on the embedded default:
 * beside the database folder (`.onepipe/dev-admin.txt` for the default
 * `.onepipe/db`), readable by the owner only. Undefined for PostgreSQL and
 * in-memory databases, which never get a development admin.
 *
 * @example
 * ```ts
 * devAdminFile(db) // '/home/ada/shop/.onepipe/dev-admin.txt'
 * ```
 */
export function devAdminFile(db: Database): string | undefined {
  const dir = db.options.dataDir
  if (db.kind !== 'pglite' || !dir || dir.startsWith('memory:')) return undefined
  return join(dirname(dir), 'dev-admin.txt')
}

/** The development admin's email. */
export const DEV_ADMIN_EMAIL = 'admin@localhost'

/**
 * A fresh random password for the development admin, written to `file`
 * (mode 0600) before the account is made, the way Jenkins keeps its
 * initial admin password in a file: nothing is a default secret, and a
 * newcomer can still log in to the dashboard at once.
 */
export function newDevAdminPassword(file: string): string {
  const password = randomBytes(18).toString('base64url')
  writeFileSync(file, `${DEV_ADMIN_EMAIL}\n${password}\n`, { mode: 0o600 })
  return password
}
