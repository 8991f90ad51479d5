import type { StandardSchemaV1 } from '@standard-schema/spec'
import { ValidationError, type ValidationIssue } from '../errors/index.js'

export type { StandardSchemaV1 }

/** The output type of a Standard Schema (Zod v4, Valibot, ArkType…). */
export type Infer<S> = S extends StandardSchemaV1<unknown, infer O> ? O : unknown

function pathOf(issue: StandardSchemaV1.Issue): string {
  if (!issue.path) return ''
  return issue.path.map((p) => (typeof p === 'object' && p !== null ? String(p.key) : String(p))).join('.')
}

/**
 * Validates `value` against a Standard Schema and returns the parsed output,
 * or throws a {@link ValidationError} listing every failing field path.
 *
 * @example
 * ```ts
 * const order = await validate(z.object({ qty: z.number() }), body, 'request body')
 * ```
 */
export async function validate<S extends StandardSchemaV1>(schema: S, value: unknown, subject: string): Promise<StandardSchemaV1.InferOutput<S>> {
  let result = schema['~standard'].validate(value)
  if (result instanceof Promise) result = await result
  if (result.issues) {
    const issues: ValidationIssue[] = result.issues.map((i) => ({ path: pathOf(i), message: i.message }))
    throw new ValidationError(subject, issues)
  }
  return result.value
}

/**
 * Whether a value is a Standard Schema (has a `~standard` property).
 *
 * @example
 * ```ts
 * if (!isStandardSchema(s)) throw new ConfigError('BAD_SCHEMA', 'pass a Zod schema')
 * ```
 */
export function isStandardSchema(s: unknown): s is StandardSchemaV1 {
  return typeof s === 'object' && s !== null && '~standard' in s
}
