import { ConfigError, parseDuration, type Duration } from '@onepipe/core'
import type { JobHandler } from './job.js'
import { consoleLogger, type WorkerLogger } from './logger.js'
import { Worker, type WorkerOptions } from './worker.js'

/**
 * The control plane's URL when neither `.url()` nor `ONEPIPE_WORKERS_URL` gives one.
 *
 * @example
 * ```ts
 * Worker.create('w').url(process.env.MY_URL ?? DEFAULT_WORKERS_URL)
 * ```
 */
export const DEFAULT_WORKERS_URL = 'http://127.0.0.1:8081'
/**
 * How long a signal-triggered stop lets running jobs finish, in ms (30 000).
 *
 * @example
 * ```ts
 * await worker.stop({ timeoutMs: DEFAULT_STOP_TIMEOUT_MS })
 * ```
 */
export const DEFAULT_STOP_TIMEOUT_MS = 30_000

const HANDLER_NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,127}$/
const MAX_CONCURRENCY = 1000

/**
 * Fluent configuration of a {@link Worker}; `Worker.create(name)` starts one.
 *
 * @example
 * ```ts
 * const w = Worker.create('vision')
 *   .url(process.env.ONEPIPE_WORKERS_URL)
 *   .apiKey(process.env.ONEPIPE_API_KEY)
 *   .handle('vision.analyze', async (job, ctx) => ({ pages: 12 }))
 *   .concurrency(8)
 *   .build()
 * ```
 */
export class WorkerBuilder {
  readonly #name: string
  #url: string | undefined
  #apiKey: string | undefined
  readonly #handlers = new Map<string, JobHandler>()
  #concurrency = 1
  #handleSignals = false
  #stopTimeoutMs = DEFAULT_STOP_TIMEOUT_MS
  #logger: WorkerLogger | undefined
  #version: string | undefined
  #waitMs: number | undefined

  /** @throws ConfigError `WORKER_BAD_NAME` for a name that is not 1-128 characters */
  constructor(name: string) {
    if (typeof name !== 'string' || name.length === 0 || name.length > 128) throw new ConfigError('WORKER_BAD_NAME', `A worker name must be a string of 1-128 characters, not ${JSON.stringify(name)}`)
    this.#name = name
  }

  /**
   * The control plane's worker API base URL. `undefined` (an unset variable)
   * keeps the default: `ONEPIPE_WORKERS_URL`, else `http://127.0.0.1:8081`.
   *
   * @throws ConfigError `WORKER_BAD_URL` for a URL that is not http(s)
   * @example `.url('https://pipelines.example.com')`
   */
  url(url: string | undefined): this {
    if (url === undefined) return this
    let u: URL
    try {
      u = new URL(url)
    } catch {
      throw new ConfigError('WORKER_BAD_URL', `Worker "${this.#name}": "${url}" is not a URL; give the control plane's base URL, like http://127.0.0.1:8081`)
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError('WORKER_BAD_URL', `Worker "${this.#name}": the URL must be http or https, not ${u.protocol}`)
    this.#url = url
    return this
  }

  /**
   * The application's API key (`op_<prefix>_<secret>`). `undefined` keeps
   * the default, `ONEPIPE_API_KEY`.
   *
   * @example `.apiKey(process.env.ONEPIPE_API_KEY)`
   */
  apiKey(key: string | undefined): this {
    if (key !== undefined && key !== '') this.#apiKey = key
    return this
  }

  /**
   * Runs `fn` for every job of the handler `name` (the `handler` of a
   * pipeline stage). One function per name.
   *
   * @throws ConfigError `WORKER_BAD_HANDLER` for a name outside `[A-Za-z][A-Za-z0-9_.:-]{0,127}`, a
   *   name given twice, or a non-function
   * @example `.handle('vision.analyze', async (job, ctx) => ({ ok: true }))`
   */
  handle<I = unknown>(name: string, fn: JobHandler<I>): this {
    if (typeof name !== 'string' || !HANDLER_NAME.test(name)) throw new ConfigError('WORKER_BAD_HANDLER', `Worker "${this.#name}": handler name ${JSON.stringify(name)} must be 1-128 letters, digits, "_", ".", ":" or "-", starting with a letter`)
    if (this.#handlers.has(name)) throw new ConfigError('WORKER_BAD_HANDLER', `Worker "${this.#name}": handler "${name}" is registered twice`)
    if (typeof fn !== 'function') throw new ConfigError('WORKER_BAD_HANDLER', `Worker "${this.#name}": handler "${name}" must be a function`)
    this.#handlers.set(name, fn as JobHandler)
    return this
  }

  /**
   * How many jobs run at once (default 1, at most 1000). The worker pulls
   * only as many as it has free slots.
   *
   * @throws ConfigError `WORKER_BAD_CONCURRENCY` outside 1-1000
   * @example `.concurrency(8)`
   */
  concurrency(n: number): this {
    if (!Number.isInteger(n) || n < 1 || n > MAX_CONCURRENCY) throw new ConfigError('WORKER_BAD_CONCURRENCY', `Worker "${this.#name}": concurrency must be a whole number from 1 to ${MAX_CONCURRENCY}, not ${n}`)
    this.#concurrency = n
    return this
  }

  /**
   * Stops gracefully on SIGTERM and SIGINT (off by default, so that a
   * library or test never takes over the process's signals): `stop()` with
   * the {@link stopTimeout}, after which the process exits on its own when
   * nothing else keeps it running.
   *
   * @example `.handleSignals()`
   */
  handleSignals(on = true): this {
    this.#handleSignals = on
    return this
  }

  /**
   * How long a signal-triggered `stop()` waits for running jobs before
   * handing them back (default 30 s; ms or `'45s'`).
   *
   * @throws ConfigError `INVALID_DURATION` for a bad duration
   * @example `.stopTimeout('45s')`
   */
  stopTimeout(d: Duration): this {
    this.#stopTimeoutMs = parseDuration(d)
    return this
  }

  /**
   * How long one pull waits for a job, in ms (default: the control plane's
   * `maxWaitMs`, which also caps it).
   *
   * @throws ConfigError `INVALID_DURATION` for a bad duration
   * @example `.pollWait('10s')`
   */
  pollWait(d: Duration): this {
    this.#waitMs = parseDuration(d)
    return this
  }

  /** Where the worker writes about itself (default: stderr, info and above). @example `.logger(myLogger)` */
  logger(l: WorkerLogger): this {
    this.#logger = l
    return this
  }

  /** The version the worker reports at bootstrap, shown beside it. @example `.version('1.4.2')` */
  version(v: string): this {
    this.#version = v
    return this
  }

  /**
   * Checks the configuration and builds the worker (nothing connects until `start()`).
   *
   * @throws ConfigError `WORKER_NO_API_KEY` without `.apiKey()` or `ONEPIPE_API_KEY`;
   *   `WORKER_NO_HANDLERS` without any `.handle()`; `WORKER_BAD_URL` for a bad `ONEPIPE_WORKERS_URL`
   */
  build(): Worker {
    const apiKey = this.#apiKey ?? (process.env.ONEPIPE_API_KEY || undefined)
    if (apiKey === undefined) throw new ConfigError('WORKER_NO_API_KEY', `Worker "${this.#name}" has no API key: set ONEPIPE_API_KEY (an API key of the application whose pipelines it runs) or call .apiKey(key)`)
    if (this.#handlers.size === 0) throw new ConfigError('WORKER_NO_HANDLERS', `Worker "${this.#name}" has no handlers: add one with .handle(name, fn)`)
    if (this.#handlers.size > 100) throw new ConfigError('WORKER_BAD_HANDLER', `Worker "${this.#name}" has ${this.#handlers.size} handlers; a pull names at most 100: split it into several workers`)
    if (this.#url === undefined && process.env.ONEPIPE_WORKERS_URL) this.url(process.env.ONEPIPE_WORKERS_URL)
    const o: WorkerOptions = {
      name: this.#name,
      url: this.#url ?? DEFAULT_WORKERS_URL,
      apiKey,
      handlers: new Map(this.#handlers),
      concurrency: this.#concurrency,
      handleSignals: this.#handleSignals,
      stopTimeoutMs: this.#stopTimeoutMs,
      logger: this.#logger ?? consoleLogger(this.#name),
      version: this.#version,
      waitMs: this.#waitMs,
    }
    return new Worker(o)
  }
}
