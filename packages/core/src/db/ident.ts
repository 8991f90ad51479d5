import { ConfigError } from '../errors/index.js'

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/**
 * Validates an SQL identifier (schema, table, channel) and returns it quoted.
 * Identifiers can never be parameters, so every one OnePipe splices into SQL
 * passes through here first.
 *
 * @example
 * ```ts
 * db.query(`SELECT * FROM ${ident(schema)}.orders`)
 * ```
 */
export function ident(name: string): string {
  if (!IDENT.test(name)) {
    throw new ConfigError('INVALID_IDENTIFIER', `"${name}" is not a valid SQL identifier: use letters, digits and _ (at most 63, not starting with a digit)`)
  }
  return `"${name}"`
}

/** Whether `name` is a valid identifier for {@link ident}. */
export function isIdent(name: string): boolean {
  return IDENT.test(name)
}
