// Field paths of filters, sort keys and declared indexes, and the parameter
// list a query is built with. A path reaches SQL only as a text[] parameter
// (`data #> $n::text[]`); the one place a path is written into SQL text is a
// declared index's expression (store.ts), after the same checks as here.
import { ValidationError } from '@onepipe/core'

/** How deep a field path may go (`a.b.c…`). */
export const MAX_PATH_DEPTH = 8

const SEGMENT = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/

/** The $-fields a filter or a sort may name, and the columns behind them. */
const BUILTINS = {
  $id: { column: 'id', type: 'text', nullable: false },
  $version: { column: 'version', type: 'int', nullable: false },
  $created_at: { column: 'created_at', type: 'time', nullable: false },
  $updated_at: { column: 'updated_at', type: 'time', nullable: false },
  $deleted_at: { column: 'deleted_at', type: 'time', nullable: true },
} as const

/** A user field at a path inside `data`. */
export interface DataField {
  kind: 'data'
  name: string
  path: string[]
}

/** A built-in `$` field, a column of the table. */
export interface BuiltinField {
  kind: 'builtin'
  name: keyof typeof BUILTINS
  column: string
  type: 'text' | 'int' | 'time'
  nullable: boolean
}

export type Field = DataField | BuiltinField

/** Whether `name` is one of the built-in `$` fields. */
export function isBuiltin(name: string): name is keyof typeof BUILTINS {
  return Object.hasOwn(BUILTINS, name)
}

/**
 * The problem with a dotted path of user fields, or undefined when it is
 * fine: 1 to 8 segments of letters, digits and `_` (not starting with a
 * digit, at most 64 each), never `__proto__`.
 */
export function pathProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'a field path must be a non-empty string'
  const segments = name.split('.')
  if (segments.length > MAX_PATH_DEPTH) return `a field path has at most ${MAX_PATH_DEPTH} segments`
  for (const s of segments) {
    if (!SEGMENT.test(s)) return `field path segment ${JSON.stringify(s)} must be letters, digits and "_" (at most 64, not starting with a digit)`
    // Harmless in SQL, but a path that walks a prototype has no business in a filter built from user input.
    if (s === '__proto__') return 'field path segment "__proto__" is not allowed'
  }
  return undefined
}

/**
 * Reads a field name of a filter or sort key: a built-in `$` field or a
 * checked dotted path.
 *
 * @throws ValidationError naming `issuePath` (the field as given)
 */
export function parseField(name: string, subject: string, issuePath: string): Field {
  if (isBuiltin(name)) return { kind: 'builtin', name, ...BUILTINS[name] }
  const problem = pathProblem(name)
  if (problem !== undefined) {
    const hint = name.startsWith('$') ? `unknown operator or field ${JSON.stringify(name)}: the $-fields are ${Object.keys(BUILTINS).join(', ')}` : problem
    throw new ValidationError(subject, [{ path: issuePath, message: hint }])
  }
  return { kind: 'data', name, path: name.split('.') }
}

/**
 * The parameters of one statement, numbered in the order they are added.
 * A path used twice is passed once.
 */
export class Params {
  readonly values: unknown[]
  readonly #paths = new Map<string, string>()

  constructor(initial: unknown[] = []) {
    this.values = [...initial]
  }

  /** Adds a value and returns its placeholder (`$3`). */
  add(value: unknown): string {
    this.values.push(value)
    return `$${this.values.length}`
  }

  /** The placeholder of a path as text[] (`$4::text[]`). */
  path(path: readonly string[]): string {
    const key = path.join('.')
    let p = this.#paths.get(key)
    if (p === undefined) this.#paths.set(key, (p = `${this.add([...path])}::text[]`))
    return p
  }
}

/** The SQL pieces that read one data field: jsonb value (SQL NULL when missing), its JSON type, its text in "C" order. */
export function dataExpr(p: Params, f: DataField): { json: string; type: string; text: string } {
  const path = p.path(f.path)
  return { json: `(data #> ${path})`, type: `jsonb_typeof(data #> ${path})`, text: `((data #>> ${path}) COLLATE "C")` }
}
