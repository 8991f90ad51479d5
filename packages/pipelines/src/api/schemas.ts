// The bodies of the external API (docs/protocol/workers.md), checked with
// zod; every failure becomes a 400 naming the field path.
import { parseDuration, ValidationError } from '@onepipe/core'
import { HANDLER_NAME } from '@onepipe/sdk'
import { z } from 'zod'

const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a UUID')
const handler = z.string().regex(HANDLER_NAME, 'must be 1-128 letters, digits, "_", "-", "." or ":", starting with a letter')
const text = (max: number) => z.string().max(max)

export const pullBody = z.strictObject({
  handlers: z.array(handler).min(1, 'name at least one handler').max(100),
  max: z.number().int().min(1).max(100).optional(),
  waitMs: z.number().int().min(0).optional(),
  wait: z.number().min(0).optional(),
  workerId: uuid.optional(),
})

export const ackOne = z.strictObject({
  executionId: uuid,
  status: z.enum(['completed', 'failed', 'released'], { message: 'must be "completed", "failed" or "released"' }),
  output: z.unknown().optional(),
  error: z
    .strictObject({ message: text(8192), code: text(128).optional(), name: text(128).optional(), retryable: z.boolean().optional(), details: z.unknown().optional() })
    .optional(),
  logs: z.array(z.strictObject({ level: z.enum(['debug', 'info', 'warn', 'error']), message: text(8192), at: z.string().max(64).optional(), fields: z.record(z.string(), z.unknown()).optional() })).max(1000).optional(),
  context: z.record(text(256), z.unknown()).optional(),
})
export type AckBody = z.infer<typeof ackOne>

export const ackBatch = z.strictObject({ acks: z.array(ackOne).min(1).max(500) })

export const listQuery = z.object({
  status: z.enum(['Running', 'Completed', 'Failed', 'Cancelled'], { message: 'must be Running, Completed, Failed or Cancelled' }).optional(),
  limit: z.coerce.number().int('must be a whole number').min(1).max(500).optional(),
})

export const renewBody = z.strictObject({ executionId: uuid })

export const logsBody = z.strictObject({
  executionId: uuid.optional(),
  pipelineId: uuid.optional(),
  entries: z.array(z.strictObject({ level: z.enum(['debug', 'info', 'warn', 'error']), message: text(8192), at: z.string().max(64).optional(), fields: z.record(z.string(), z.unknown()).optional() })).min(1).max(1000),
})

export const bootstrapBody = z.strictObject({
  name: z.string().min(1).max(128),
  handlers: z.array(handler).min(1).max(100),
  concurrency: z.number().int().min(1).max(1000),
  version: text(64).optional(),
  host: text(256).optional(),
})

export const heartbeatBody = z.strictObject({
  workerId: uuid.optional(),
  inFlight: z.number().int().min(0).max(100_000),
  cpu: z.number().min(0).max(1024).optional(),
  memoryBytes: z.number().int().min(0).optional(),
  lagMs: z.number().min(0).max(86_400_000).optional(),
})

export const eventsBody = z.strictObject({
  workerId: uuid.optional(),
  events: z.array(z.strictObject({ type: z.string().min(1).max(128), at: z.string().max(64).optional(), data: z.unknown().optional() })).min(1).max(500),
})

export const shutdownBody = z.strictObject({ workerId: uuid.optional(), reason: text(1024).optional() })

export const resumeBody = z.strictObject({ decision: z.enum(['approved', 'rejected']), reason: text(4096).optional() })

export const rerunBody = z.strictObject({ following: z.boolean().optional() }).optional()

export const templateBody = z.strictObject({
  template: z.string().min(1).max(128),
  input: z.unknown().optional(),
  context: z.record(text(256), z.unknown()).optional(),
  keywords: z.array(z.string().min(1).max(128)).max(32).optional(),
})

/** An operator starting a template from the dashboard names the application whose workers run it. */
export const templateStartBody = z.strictObject({
  appId: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be an application id'),
  input: z.unknown().optional(),
  keywords: z.array(z.string().min(1).max(128)).max(32).optional(),
  idempotencyKey: z.string().min(1).max(256).optional(),
})

const DAY_MS = 86_400_000

// A duration as the builder takes it ('30s', '1m', or ms), 1 ms to a day, parsed to ms.
const duration = z.union([z.number(), z.string().max(32)]).transform((v, ctx) => {
  let ms: number
  try {
    ms = parseDuration(v)
  } catch {
    ms = Number.NaN
  }
  if (!(ms >= 1 && ms <= DAY_MS)) {
    ctx.addIssue({ code: 'custom', message: 'must be a duration from 1 ms to 1 day, such as 500ms, 30s, 1m, or a number of milliseconds' })
    return z.NEVER
  }
  return ms
})

/**
 * A handler's policy (`PUT /handlers/{name}/policy`, `.handlerPolicy()`):
 * every limit optional (null or left out: off); `window` and `cooldown`
 * are durations (`'30s'`, or ms), 1 ms to a day, and come out in ms.
 *
 * @example
 * ```ts
 * parse(policyBody, { concurrency: 4, breaker: { failureRate: 0.5, minCalls: 20, window: '1m', cooldown: '30s' } }, 'handler policy')
 * // { concurrency: 4, breaker: { failureRate: 0.5, minCalls: 20, window: 60000, cooldown: 30000 } }
 * ```
 */
export const policyBody = z.strictObject({
  concurrency: z.number().int().min(1).max(1_000_000).nullable().optional(),
  rate: z.strictObject({ perSecond: z.number().positive().max(1_000_000), burst: z.number().int().min(1).max(1_000_000).optional() }).nullable().optional(),
  breaker: z
    .strictObject({ failureRate: z.number().gt(0).max(1), minCalls: z.number().int().min(1).max(1_000_000), window: duration, cooldown: duration })
    .nullable()
    .optional(),
})

/**
 * The handler name of a path (`/handlers/{name}/policy`).
 *
 * @example
 * ```ts
 * const name = handlerParam(c.req.param('name')) // 'vision.analyze'
 * ```
 * @throws ValidationError (400, path `name`) for a segment that is not a handler name
 */
export function handlerParam(v: string | undefined): string {
  if (v === undefined || !handler.safeParse(v).success) throw new ValidationError('path', [{ path: 'name', message: 'must be 1-128 letters, digits, "_", "-", "." or ":", starting with a letter' }])
  return v
}

/**
 * Parses `body` with `schema`, or throws a 400 ValidationError naming each field.
 *
 * @example
 * ```ts
 * const b = parse(pullBody, await readJson(c), 'pull request')
 * ```
 */
export function parse<T extends z.ZodType>(schema: T, body: unknown, subject: string): z.infer<T> {
  const r = schema.safeParse(body)
  if (r.success) return r.data
  throw new ValidationError(subject, r.error.issues.slice(0, 10).map((i) => ({ path: i.path.map(String).join('.'), message: i.message })))
}
