import { ConfigError, REQUEST_ID_KEY, type Logger } from '@onepipe/core'
import { context, isSpanContextValid, trace } from '@opentelemetry/api'
import { pino, type DestinationStream, type Logger as Pino } from 'pino'

const NOTHING = Object.freeze({})

/**
 * What every line gets from where it was logged: the active span's
 * `traceId` and `spanId`, and the `requestId` of the request `serve()` is
 * tracing. Without a tracer provider there is no active context, so this
 * costs two lookups that find nothing; fields the call passes itself win.
 */
function traceFields(): object {
  const ctx = context.active()
  const sc = trace.getSpanContext(ctx)
  const requestId = ctx.getValue(REQUEST_ID_KEY)
  if (!sc && requestId === undefined) return NOTHING
  const o: { requestId?: string; traceId?: string; spanId?: string } = {}
  if (typeof requestId === 'string') o.requestId = requestId
  if (sc && isSpanContextValid(sc)) {
    o.traceId = sc.traceId
    o.spanId = sc.spanId
  }
  return o
}

/**
 * The process logger: structured JSON lines on stdout (pino), level from
 * `LOG_LEVEL` (default `info`). A line logged while a span is active
 * carries its `traceId` and `spanId` (and, inside a request `serve()`
 * traces, the `requestId`), so a trace and its log lines find each other.
 *
 * @throws ConfigError `INVALID_LOG_LEVEL` naming the accepted levels, for a level pino does not know
 *
 * @example
 * ```ts
 * const log = createLogger({ level: 'debug', base: { app: 'shop' } })
 * log.info({ orderId }, 'order created')
 * ```
 */
export function createLogger(options: { level?: string; base?: Record<string, unknown>; destination?: DestinationStream } = {}): Logger & { pino: Pino } {
  const level = (options.level ?? (process.env.LOG_LEVEL || 'info')).toLowerCase()
  const known = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
  if (!known.includes(level)) {
    throw new ConfigError('INVALID_LOG_LEVEL', `${options.level === undefined ? 'LOG_LEVEL' : 'The log level'} "${level}" is not a level; use one of ${known.join(', ')}`)
  }
  const opts = {
    level,
    // Secrets never reach a log line, wherever they appear in what is logged.
    redact: {
      paths: [
        'authorization',
        'cookie',
        'password',
        'apiKey',
        'token',
        'accessToken',
        'refreshToken',
        'secret',
        '*.authorization',
        '*.cookie',
        '*.password',
        '*.apiKey',
        '*.token',
        '*.accessToken',
        '*.refreshToken',
        '*.secret',
        'headers["x-api-key"]',
        '*.headers.authorization',
        '*.headers.cookie',
        '*.headers["x-api-key"]',
        '*.headers["set-cookie"]',
      ],
      censor: '[redacted]',
    },
    base: { pid: process.pid, ...options.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: traceFields,
    // pino's default merge writes the call's fields into the mixin's object; the shared empty one is left as it is.
    mixinMergeStrategy: (fields: object, traced: object) => (traced === NOTHING ? fields : Object.assign(traced, fields)),
  } satisfies Parameters<typeof pino>[0]
  const p = options.destination ? pino(opts, options.destination) : pino(opts)
  return wrap(p)
}

function wrap(p: Pino): Logger & { pino: Pino } {
  const call = (level: 'debug' | 'info' | 'warn' | 'error') => (obj: object | string, msg?: string) => {
    if (typeof obj === 'string') p[level](obj)
    else p[level](obj, msg)
  }
  return {
    pino: p,
    debug: call('debug'),
    info: call('info'),
    warn: call('warn'),
    error: call('error'),
    child: (bindings) => wrap(p.child(bindings)),
  }
}
