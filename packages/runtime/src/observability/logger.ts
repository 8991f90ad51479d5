import { ConfigError, traceLogFields, type Logger } from '@onepipe/core'
import { pino, type DestinationStream, type Logger as Pino } from 'pino'

const NOTHING = Object.freeze({})

/** The active span's ids and the traced request's id; the shared empty object when there are none (always, untraced). */
function traceFields(): object {
  return traceLogFields() ?? NOTHING
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
