import { ConfigError, type Logger } from '@onepipe/core'
import { pino, type Logger as Pino } from 'pino'

/**
 * The process logger: structured JSON lines on stdout (pino), level from
 * `LOG_LEVEL` (default `info`).
 *
 * @throws ConfigError `INVALID_LOG_LEVEL` naming the accepted levels, for a level pino does not know
 *
 * @example
 * ```ts
 * const log = createLogger({ level: 'debug', base: { app: 'shop' } })
 * log.info({ orderId }, 'order created')
 * ```
 */
export function createLogger(options: { level?: string; base?: Record<string, unknown> } = {}): Logger & { pino: Pino } {
  const level = (options.level ?? (process.env.LOG_LEVEL || 'info')).toLowerCase()
  const known = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
  if (!known.includes(level)) {
    throw new ConfigError('INVALID_LOG_LEVEL', `${options.level === undefined ? 'LOG_LEVEL' : 'The log level'} "${level}" is not a level; use one of ${known.join(', ')}`)
  }
  const p = pino({
    level,
    base: { pid: process.pid, ...options.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  })
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
