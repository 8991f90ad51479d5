import { parseDuration, ValidationError, valueIssues, type ValidationIssue } from '@onepipe/core'
import { z } from 'zod'

/** Most stages one pipeline may have: a definition is a plan, not a data set. */
export const MAX_STAGES = 500
/** A handler name: what workers register for (`vision.analyze`). */
export const HANDLER_NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,127}$/
const STAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/
const DAY_MS = 86_400_000

/** How a stage's failed attempts are retried (times in ms). */
export type Backoff = 'fixed' | 'linear' | 'exponential'

/**
 * One stage of a pipeline with every option decided, as the engine stores it.
 *
 * @example
 * ```ts
 * { name: 'bid', handler: 'pricing.bid', dependsOn: ['analyze'], parallelWith: [], maxRetries: 3,
 *   retryIntervalMs: 1000, maxRetryIntervalMs: 60_000, backoff: 'exponential', timeoutMs: 300_000,
 *   runNextIfFailed: false, requiresApproval: false }
 * ```
 */
export interface StageSpec {
  name: string
  handler: string
  input?: unknown
  /** The stages that must be final (Completed, or failed with `runNextIfFailed`) before this one starts. */
  dependsOn: string[]
  /** As declared: the stages this one starts together with. */
  parallelWith: string[]
  /** Retries after the first attempt (0: one attempt only). */
  maxRetries: number
  retryIntervalMs: number
  maxRetryIntervalMs: number
  backoff: Backoff
  /** Longest one attempt may run; null for no limit. */
  timeoutMs: number | null
  /** A failure of this stage still lets the stages depending on it run. */
  runNextIfFailed: boolean
  /** The stage waits for an operator's approval before it is handed to a worker. */
  requiresApproval: boolean
}

/**
 * A whole pipeline definition, checked: names unique, dependencies known and
 * acyclic, every value storable.
 *
 * @example
 * ```ts
 * { name: 'blueprint', keywords: ['acme'], context: { customer: 'acme' }, input: { file: 'a.pdf' }, stages: [ … ] }
 * ```
 */
export interface PipelineSpec {
  name: string
  keywords: string[]
  context: Record<string, unknown>
  input?: unknown
  stages: StageSpec[]
}

const duration = z.union([
  z.number().int('must be a whole number of milliseconds').min(0, 'must be 0 or more milliseconds'),
  z.string().max(32),
])

const stageShape = z.strictObject({
  stageName: z.string().regex(STAGE_NAME, 'must be 1-128 characters of letters, digits, "_", "-", "." or ":", starting with a letter or digit'),
  stageHandlerName: z.string().regex(HANDLER_NAME, 'must be 1-128 characters of letters, digits, "_", "-", "." or ":", starting with a letter'),
  input: z.unknown().optional(),
  options: z
    .strictObject({
      dependsOn: z.array(z.string().max(128)).max(MAX_STAGES).optional(),
      runInParallelWith: z.array(z.string().max(128)).max(MAX_STAGES).optional(),
      maxRetries: z.number().int().min(0).max(100).optional(),
      retryInterval: duration.optional(),
      maxRetryInterval: duration.optional(),
      backoff: z.enum(['fixed', 'linear', 'exponential']).optional(),
      timeOut: z.union([z.number().int('must be a whole number of milliseconds').min(1, 'must be between 1 ms and 7 days'), z.string().max(32)]).optional(),
      runNextIfFailed: z.boolean().optional(),
      requiresApproval: z.boolean().optional(),
    })
    .optional(),
})

const definitionShape = z.strictObject({
  name: z.string().min(1).max(200),
  keywords: z.array(z.string().min(1).max(128)).max(32).optional(),
  context: z.record(z.string().max(256), z.unknown()).optional(),
  input: z.unknown().optional(),
  stages: z.array(stageShape).min(1, 'a pipeline needs at least one stage').max(MAX_STAGES, `a pipeline has at most ${MAX_STAGES} stages`),
})

/** The posted shape of a pipeline definition (the external API's `POST /pipelines`). */
export type PipelineDefinition = z.input<typeof definitionShape>

const pathOf = (p: readonly PropertyKey[]): string => p.map(String).join('.')

/**
 * Reads a posted pipeline definition (the seed's shape: `stageName`,
 * `stageHandlerName`, `options.dependsOn`, `timeOut`…) into a checked
 * {@link PipelineSpec}. Durations are milliseconds or strings such as `'5m'`.
 *
 * @throws ValidationError (400) naming every failing field, as `stages.1.options.dependsOn.0`
 *
 * @example
 * ```ts
 * parsePipelineDefinition({ name: 'blueprint', stages: [{ stageName: 'analyze', stageHandlerName: 'vision.analyze' }] })
 * ```
 */
export function parsePipelineDefinition(body: unknown): PipelineSpec {
  return checkSpec(readDefinition(body))
}

/**
 * Reads stages posted to be appended to a running pipeline: checked one by
 * one (names, handlers, options, values); their `dependsOn` may name the
 * pipeline's existing stages, so the whole is checked when merged with
 * them (`checkSpec`). A stage without `dependsOn` has it undefined.
 *
 * @throws ValidationError (400) naming every failing field, as `stages.0.options.timeOut`
 * @example
 * ```ts
 * const added = parseAppendedStages([{ stageName: 'z', stageHandlerName: 'x.z', options: { dependsOn: ['a'] } }])
 * ```
 */
export function parseAppendedStages(stages: unknown): (Omit<StageSpec, 'dependsOn'> & { dependsOn?: string[] })[] {
  return readDefinition({ name: 'append', stages }).stages
}

function readDefinition(body: unknown): Omit<PipelineSpec, 'stages'> & { stages: (Omit<StageSpec, 'dependsOn'> & { dependsOn?: string[] })[] } {
  const r = definitionShape.safeParse(body)
  if (!r.success) {
    throw new ValidationError('pipeline definition', r.error.issues.slice(0, 10).map((i) => ({ path: pathOf(i.path), message: i.message })))
  }
  const d = r.data
  const issues: ValidationIssue[] = []
  const stages = d.stages.map((s, i): Omit<StageSpec, 'dependsOn'> & { dependsOn?: string[] } => {
    const o = s.options ?? {}
    const ms = (v: number | string | undefined, field: string, fallback: number | null, min: number): number | null => {
      if (v === undefined) return fallback
      let n: number
      try {
        n = parseDuration(v)
      } catch {
        issues.push({ path: `stages.${i}.options.${field}`, message: 'must be milliseconds or a duration such as "30s" or "5m"' })
        return fallback
      }
      if (n < min || n > 7 * DAY_MS) issues.push({ path: `stages.${i}.options.${field}`, message: `must be between ${min} ms and 7 days` })
      return n
    }
    return {
      name: s.stageName,
      handler: s.stageHandlerName,
      ...(s.input === undefined ? {} : { input: s.input }),
      ...(o.dependsOn === undefined ? {} : { dependsOn: o.dependsOn }),
      parallelWith: o.runInParallelWith ?? [],
      maxRetries: o.maxRetries ?? 0,
      retryIntervalMs: ms(o.retryInterval, 'retryInterval', 1000, 0) ?? 1000,
      maxRetryIntervalMs: ms(o.maxRetryInterval, 'maxRetryInterval', 5 * 60_000, 0) ?? 5 * 60_000,
      backoff: o.backoff ?? 'exponential',
      timeoutMs: ms(o.timeOut, 'timeOut', null, 1),
      runNextIfFailed: o.runNextIfFailed ?? false,
      requiresApproval: o.requiresApproval ?? false,
    }
  })
  for (const [i, st] of stages.entries()) {
    if (st.input === undefined) continue
    for (const x of valueIssues(st.input)) issues.push({ path: x.path ? `stages.${i}.input.${x.path}` : `stages.${i}.input`, message: x.message })
  }
  if (issues.length > 0) throw new ValidationError('pipeline definition', issues.slice(0, 10))
  return {
    name: d.name,
    keywords: d.keywords ?? [],
    context: d.context ?? {},
    ...(d.input === undefined ? {} : { input: d.input }),
    stages,
  }
}

/**
 * Decides every stage's dependencies and checks the whole: unique names,
 * known `dependsOn` and `runInParallelWith` names, no cycle, storable values.
 *
 * A stage with `dependsOn` waits for exactly those. One without waits for
 * the group before it, as stages ran in order in the original system: a
 * group is a run of consecutive stages tied by `runInParallelWith`, and
 * its members start together.
 *
 * @throws ValidationError (400) with the field path of each problem
 *
 * @example
 * ```ts
 * checkSpec({ name: 'p', keywords: [], context: {}, stages: [a, b] }) // b depends on a
 * ```
 */
export function checkSpec(spec: Omit<PipelineSpec, 'stages'> & { stages: (Omit<StageSpec, 'dependsOn'> & { dependsOn?: string[] })[] }): PipelineSpec {
  const issues: ValidationIssue[] = []
  // The same bounds for a template in code as for a definition posted over HTTP.
  if (spec.stages.length === 0) issues.push({ path: 'stages', message: 'a pipeline needs at least one stage' })
  if (spec.stages.length > MAX_STAGES) issues.push({ path: 'stages', message: `a pipeline has at most ${MAX_STAGES} stages, got ${spec.stages.length}` })
  if (typeof spec.context !== 'object' || spec.context === null || Array.isArray(spec.context)) issues.push({ path: 'context', message: 'must be an object of context items ({ "<key>": value })' })
  if (!Array.isArray(spec.keywords) || spec.keywords.length > 32 || spec.keywords.some((k) => typeof k !== 'string' || k.length === 0 || k.length > 128)) {
    issues.push({ path: 'keywords', message: 'must be at most 32 strings of 1-128 characters' })
  }
  if (issues.length > 0) throw new ValidationError('pipeline definition', issues)
  const index = new Map<string, number>()
  spec.stages.forEach((s, i) => {
    if (index.has(s.name)) issues.push({ path: `stages.${i}.stageName`, message: `"${s.name}" names two stages; stage names must be unique` })
    else index.set(s.name, i)
  })
  spec.stages.forEach((s, i) => {
    s.dependsOn?.forEach((n, j) => {
      if (!index.has(n)) issues.push({ path: `stages.${i}.options.dependsOn.${j}`, message: `no stage is named "${n}"` })
      else if (n === s.name) issues.push({ path: `stages.${i}.options.dependsOn.${j}`, message: 'a stage cannot depend on itself' })
    })
    s.parallelWith.forEach((n, j) => {
      if (!index.has(n)) issues.push({ path: `stages.${i}.options.runInParallelWith.${j}`, message: `no stage is named "${n}"` })
    })
  })
  const valueChecks: [unknown, string][] = [[spec.input, 'input'], [spec.context, 'context'], ...spec.stages.map((s, i): [unknown, string] => [s.input, `stages.${i}.input`])]
  for (const [v, path] of valueChecks) {
    if (v === undefined) continue
    for (const x of valueIssues(v)) issues.push({ path: x.path ? `${path}.${x.path}` : path, message: x.message })
  }
  if (issues.length > 0) throw new ValidationError('pipeline definition', issues.slice(0, 10))

  const stages = withDependencies(spec.stages)
  const cycle = findCycle(stages)
  if (cycle !== undefined) {
    const i = index.get(cycle[0] ?? '') ?? 0
    const j = (spec.stages[i]?.dependsOn ?? []).indexOf(cycle[1] ?? '')
    throw new ValidationError('pipeline definition', [{ path: `stages.${i}.options.dependsOn${j >= 0 ? `.${j}` : ''}`, message: `dependsOn makes a cycle: ${cycle.join(' → ')}` }])
  }
  return { name: spec.name, keywords: spec.keywords, context: spec.context, ...(spec.input === undefined ? {} : { input: spec.input }), stages }
}

function withDependencies(stages: (Omit<StageSpec, 'dependsOn'> & { dependsOn?: string[] })[]): StageSpec[] {
  // Groups of consecutive stages tied by runInParallelWith (either side may name the other).
  const groups: string[][] = []
  for (const s of stages) {
    const last = groups[groups.length - 1]
    const tied = last?.some((m) => s.parallelWith.includes(m) || stages.find((x) => x.name === m)?.parallelWith.includes(s.name))
    if (last && tied) last.push(s.name)
    else groups.push([s.name])
  }
  const groupOf = new Map<string, number>()
  groups.forEach((g, k) => g.forEach((n) => groupOf.set(n, k)))
  return stages.map((s) => {
    const k = groupOf.get(s.name) ?? 0
    const dependsOn = s.dependsOn ? [...new Set(s.dependsOn)] : k > 0 ? [...(groups[k - 1] ?? [])] : []
    return { ...s, dependsOn }
  })
}

/** A cycle as stage names (first repeated at the end), or undefined. Iterative: 500 stages cannot overflow the stack. */
function findCycle(stages: StageSpec[]): string[] | undefined {
  const deps = new Map(stages.map((s) => [s.name, s.dependsOn]))
  const state = new Map<string, 1 | 2>()
  for (const start of stages) {
    if (state.has(start.name)) continue
    const stack: { name: string; next: number }[] = [{ name: start.name, next: 0 }]
    state.set(start.name, 1)
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!
      const ds = deps.get(top.name) ?? []
      if (top.next >= ds.length) {
        state.set(top.name, 2)
        stack.pop()
        continue
      }
      const d = ds[top.next++]!
      const st = state.get(d)
      if (st === 1) {
        const from = stack.findIndex((f) => f.name === d)
        return [...stack.slice(from).map((f) => f.name), d]
      }
      if (st === undefined) {
        state.set(d, 1)
        stack.push({ name: d, next: 0 })
      }
    }
  }
  return undefined
}
