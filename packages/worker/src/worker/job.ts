import { encodeValue, OnePipeError, recordable } from '@onepipe/core'
import { JobAbortedError } from '../errors/index.js'
import type { WireJob } from '../http/protocol.js'

/**
 * One attempt of one pipeline stage, as a handler receives it.
 *
 * @example
 * ```ts
 * .handle('pricing.bid', async (job: Job<{ sku: string }>) => {
 *   const analysis = job.upstream.analyze?.output   // the output of the stage "analyze"
 *   return { sku: job.input.sku, price: 10, customer: job.context.customer }
 * })
 * ```
 */
export interface Job<I = unknown> {
  /** The id of this attempt; a new attempt of the same stage has another. */
  executionId: string
  stageId: string
  pipelineId: string
  stageName: string
  handler: string
  /** 1 for the first attempt, 2 for the first retry… */
  attempt: number
  /** The stage's input (merged over the pipeline's input by the control plane). */
  input: I
  /** The outputs of the stages this one depends on, by stage name. */
  upstream: Record<string, { output: unknown }>
  /** The pipeline's context items when the job was handed out. */
  context: Record<string, unknown>
  /** When the stage's timeout ends (ISO 8601), if it has one; `ctx.signal` aborts then. */
  deadline?: string
}

/**
 * Log lines of one job: buffered and sent with its ack (or earlier through
 * `POST /logs` when they add up), so they are stored beside the stage.
 * Fields are made storable (dates as ISO strings, cycles cut), never refused.
 *
 * @example
 * ```ts
 * ctx.log.info('analyzed', { pages: 12, ms: 830 })
 * ```
 */
export interface JobLogger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

/**
 * What a handler gets besides its {@link Job}.
 *
 * @example
 * ```ts
 * .handle('vision.analyze', async (job, ctx) => {
 *   ctx.log.info('start', { attempt: ctx.attempt })
 *   const res = await fetch(job.input.url, { signal: ctx.signal })
 *   ctx.setContext('pages', 12)
 *   return { bytes: (await res.arrayBuffer()).byteLength }
 * })
 * ```
 */
export interface JobContext {
  log: JobLogger
  /**
   * Adds or replaces one pipeline context item, merged when the job is
   * acknowledged (completed or failed) and seen by later stages in `job.context`.
   *
   * @throws ValidationError (`VALIDATION_FAILED`) naming the path when the value cannot round-trip through JSON
   */
  setContext(key: string, value: unknown): void
  /**
   * Aborted when the attempt is over for the control plane (cancelled,
   * lease lost: `signal.reason` is a {@link JobAbortedError}), when the
   * stage's deadline passes, or when `stop()` runs out of time. Pass it to
   * fetch and anything else that can stop early.
   */
  signal: AbortSignal
  /** The same as `job.attempt`. */
  attempt: number
}

/**
 * Runs one job: the function a worker registers for a handler name. Its
 * return value is the stage's output (JSON values only); throwing fails the
 * attempt: a `TerminalError` for good, anything else to be retried by the
 * stage's policy.
 *
 * @example
 * ```ts
 * const upper: JobHandler<{ text: string }> = (job) => ({ text: job.input.text.toUpperCase() })
 * ```
 */
export type JobHandler<I = unknown> = (job: Job<I>, ctx: JobContext) => unknown

/** The `error` of a failed ack. */
export interface AckError {
  message: string
  code?: string
  name: string
  retryable: boolean
  /** A OnePipeError's details (a ValidationError's `issues`), made storable. */
  details?: unknown
}

/** What a RunningJob needs from its worker. */
export interface JobHooks {
  /** Renews the lease: `stale`/`cancelled` end the attempt, `error` is tried again at the next tick. */
  renew(executionId: string): Promise<'ok' | 'stale' | 'cancelled' | 'error'>
  /** Sends log entries (JSON texts) through `POST /logs` now. */
  flushLogs(job: WireJob, entries: string[]): void
}

/** A finished job's ack, as JSON text, and the failed ack to send instead if the control plane refuses it. */
export interface AckText {
  executionId: string
  text: string
  /** Present for a completed ack: the permanent failure to report when its output is refused (400/413). */
  fallback?: (reason: string) => string
}

// A buffer past this goes out through POST /logs instead of waiting for the ack,
// so an ack stays far below the protocol's body limit and a chatty job does not hold its lines in memory.
const LOG_FLUSH_BYTES = 64 * 1024
const LOG_FLUSH_ENTRIES = 500
const MAX_TIMER_MS = 2 ** 31 - 1
// The protocol takes messages of up to 8192 characters and codes and names of up to 128:
// a longer one would have the whole ack refused, so it is cut here, saying so.
const MAX_MESSAGE = 8192
const MAX_NAME = 128

/**
 * One job between pull and ack: its signal, lease renewal, deadline, log
 * buffer and context items, and the ack it produces.
 */
export class RunningJob {
  readonly wire: WireJob
  readonly #controller = new AbortController()
  readonly #hooks: JobHooks
  #logs: string[] = []
  #logBytes = 0
  readonly #context = new Map<string, string>()
  #renewTimer: ReturnType<typeof setTimeout> | undefined
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined
  #settled = false
  /** The control plane said the attempt is over, or stop() acked it: its result must not be sent. */
  #over = false

  constructor(wire: WireJob, leaseMs: number, hooks: JobHooks) {
    this.wire = wire
    this.#hooks = hooks
    this.#scheduleRenew(Math.max(50, Math.floor((wire.leaseMs ?? leaseMs) / 3)))
    this.#armDeadline(wire.leaseMs ?? leaseMs)
  }

  get signal(): AbortSignal {
    return this.#controller.signal
  }

  /**
   * Calls the handler and returns the ack to send, or undefined when the
   * attempt ended meanwhile (stale, cancelled, or already acked by stop()).
   */
  async run(handler: JobHandler | undefined): Promise<AckText | undefined> {
    const w = this.wire
    try {
      if (!handler) return this.#failed({ message: `This worker has no handler "${w.handler}"`, code: 'WORKER_NO_HANDLER', name: 'ConfigError', retryable: false })
      const job: Job = {
        executionId: w.executionId,
        stageId: w.stageId,
        pipelineId: w.pipelineId,
        stageName: w.stageName,
        handler: w.handler,
        attempt: w.attempt,
        input: w.input,
        upstream: w.upstream,
        context: w.context,
        ...(w.deadline === undefined ? {} : { deadline: w.deadline }),
      }
      let output: unknown
      try {
        output = await handler(job, this.#ctx())
      } catch (e) {
        return this.#over ? undefined : this.#failed(ackError(e))
      }
      if (this.#over) return undefined
      let text: string
      try {
        text = encodeValue(output, { subject: `output of handler "${w.handler}"`, allowUndefined: true, code: 'INVALID_OUTPUT', status: 500 }) ?? 'null'
      } catch (e) {
        return this.#failed(ackError(e))
      }
      const fallback = (reason: string) => this.#ack('failed', JSON.stringify({ message: `The control plane refused the output: ${reason}`, code: 'OUTPUT_REFUSED', name: 'ValidationError', retryable: false }))
      return { executionId: w.executionId, text: this.#ack('completed', text), fallback }
    } finally {
      this.#settled = true
      this.dispose()
    }
  }

  /**
   * Ends the job for stop(): aborts its signal and hands it back
   * (`released`), so the stage goes to another worker at once instead of
   * after its lease, without spending one of its retries. Undefined when it
   * is already over.
   */
  abandon(): AckText | undefined {
    if (this.#over || this.#settled) return undefined
    this.#over = true
    this.dispose()
    this.#controller.abort(new JobAbortedError('WORKER_SHUTTING_DOWN', 'The worker is shutting down; the job is handed back to run elsewhere'))
    return { executionId: this.wire.executionId, text: JSON.stringify({ executionId: this.wire.executionId, status: 'released' }) }
  }

  /** Stops the lease and deadline timers. */
  dispose(): void {
    clearTimeout(this.#renewTimer)
    clearTimeout(this.#deadlineTimer)
    this.#renewTimer = undefined
    this.#deadlineTimer = undefined
  }

  #ctx(): JobContext {
    const line = (level: string) => (message: string, fields?: Record<string, unknown>) => this.#log(level, message, fields)
    return {
      log: { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') },
      setContext: (key, value) => {
        if (typeof key !== 'string' || key.length === 0 || key.length > 256) throw new OnePipeError('VALIDATION_FAILED', `setContext: the key must be a string of 1-256 characters, not ${JSON.stringify(key)}`, { status: 400 })
        this.#context.set(key, encodeValue(value, { subject: `context item "${key}"` }))
      },
      signal: this.#controller.signal,
      attempt: this.wire.attempt,
    }
  }

  #log(level: string, message: string, fields: Record<string, unknown> | undefined): void {
    const entry = JSON.stringify({
      level,
      message: clip(message, MAX_MESSAGE),
      at: new Date().toISOString(),
      ...(fields === undefined ? {} : { fields: recordable(fields) }),
    })
    // A line written after the ack (a stray callback) still reaches the stage's logs.
    if (this.#settled) return this.#hooks.flushLogs(this.wire, [entry])
    this.#logs.push(entry)
    this.#logBytes += entry.length
    if (this.#logBytes >= LOG_FLUSH_BYTES || this.#logs.length >= LOG_FLUSH_ENTRIES) {
      this.#hooks.flushLogs(this.wire, this.#logs)
      this.#logs = []
      this.#logBytes = 0
    }
  }

  #failed(error: AckError): AckText {
    return { executionId: this.wire.executionId, text: this.#ack('failed', JSON.stringify(error)) }
  }

  // Built as text around the already-encoded output: a large output is serialized once, not twice.
  #ack(status: 'completed' | 'failed', payload: string): string {
    let s = `{"executionId":${JSON.stringify(this.wire.executionId)},"status":"${status}",${status === 'completed' ? '"output"' : '"error"'}:${payload}`
    if (this.#logs.length > 0) s += `,"logs":[${this.#logs.join(',')}]`
    if (this.#context.size > 0) s += `,"context":{${[...this.#context].map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`
    return `${s}}`
  }

  #scheduleRenew(everyMs: number): void {
    this.#renewTimer = setTimeout(() => {
      this.#renewTimer = undefined
      void this.#hooks.renew(this.wire.executionId).then((r) => {
        if (this.#settled || this.#over) return
        if (r === 'stale' || r === 'cancelled') {
          this.#over = true
          this.dispose()
          const e = r === 'cancelled' ? new JobAbortedError('JOB_CANCELLED', 'The pipeline was cancelled') : new JobAbortedError('STALE_ATTEMPT', 'The attempt is over for the control plane (lease lost, timed out or superseded)')
          this.#controller.abort(e)
          return
        }
        this.#scheduleRenew(everyMs)
      })
    }, everyMs)
  }

  // The deadline is the control plane's clock. The lease it gave tells its "now" (leaseExpiresAt − leaseMs),
  // so the time left is measured on its clock, not ours: a worker whose clock is off by minutes still aborts on time.
  #armDeadline(leaseMs: number): void {
    const w = this.wire
    if (w.deadline === undefined) return
    const deadline = Date.parse(w.deadline)
    if (Number.isNaN(deadline)) return
    const expires = w.leaseExpiresAt === undefined ? NaN : Date.parse(w.leaseExpiresAt)
    const serverNow = Number.isNaN(expires) ? Date.now() : expires - leaseMs
    const left = deadline - serverNow
    if (left > MAX_TIMER_MS) return
    const abort = () => this.#controller.abort(new JobAbortedError('DEADLINE_EXCEEDED', `The stage's deadline (${w.deadline}) passed`))
    if (left <= 0) abort()
    else this.#deadlineTimer = setTimeout(abort, left)
  }
}

/**
 * The `error` of a failed ack for a thrown value: a OnePipeError keeps its
 * code and says itself whether it may be retried (`TerminalError`: never);
 * anything else is retryable, by the stage's policy.
 */
export function ackError(e: unknown): AckError {
  if (e instanceof OnePipeError) {
    return { message: clip(e.message, MAX_MESSAGE), code: clip(e.code, MAX_NAME), name: clip(e.name, MAX_NAME), retryable: e.retryable, ...(e.details === undefined ? {} : { details: recordable(e.details) }) }
  }
  if (e instanceof Error) {
    const o = e as Error & { code?: unknown; retryable?: unknown }
    // Another copy of @onepipe/core (or a look-alike) still says retryable: false: honour it.
    return { message: clip(e.message, MAX_MESSAGE), ...(typeof o.code === 'string' ? { code: clip(o.code, MAX_NAME) } : {}), name: clip(e.name, MAX_NAME), retryable: o.retryable !== false }
  }
  if (typeof e === 'object' && e !== null) {
    const o = e as Record<string, unknown>
    const message = typeof o.message === 'string' ? o.message : JSON.stringify(recordable(o))
    return { message: clip(message, MAX_MESSAGE), ...(typeof o.code === 'string' ? { code: clip(o.code, MAX_NAME) } : {}), name: 'Error', retryable: o.retryable !== false }
  }
  return { message: clip(typeof e === 'symbol' ? e.toString() : String(e), MAX_MESSAGE), name: 'Error', retryable: true }
}

/** `s` made storable (no NUL, no lone surrogate) and at most `max` characters. */
export function clip(s: unknown, max: number): string {
  const t = recordable(typeof s === 'string' ? s : String(s)) as string
  return t.length <= max ? t : `${t.slice(0, max - 12)}… (cut)`
}
