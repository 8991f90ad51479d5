/**
 * Where a worker writes about itself (connection trouble, refused acks,
 * stop): not a job's own logs, which go to the control plane. Any logger
 * with these four methods fits (pino, console wrappers).
 *
 * @example
 * ```ts
 * import pino from 'pino'
 * const log = pino()
 * Worker.create('vision').logger({
 *   debug: (m, f) => log.debug(f, m), info: (m, f) => log.info(f, m),
 *   warn: (m, f) => log.warn(f, m), error: (m, f) => log.error(f, m),
 * })
 * ```
 */
export interface WorkerLogger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

/** The default: one line per message on stderr (info and above), prefixed with the worker's name. */
export function consoleLogger(name: string): WorkerLogger {
  const write = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    const extra = fields === undefined ? '' : ` ${safeJson(fields)}`
    process.stderr.write(`[onepipe-worker ${name}] ${level} ${message}${extra}\n`)
  }
  return { debug: () => {}, info: write('info'), warn: write('warn'), error: write('error') }
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v)
  } catch {
    return '[fields not serializable]'
  }
}
