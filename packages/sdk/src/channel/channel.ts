import { createHash, randomUUID } from 'node:crypto'
import {
  assertDatabase,
  ConfigError,
  ConflictError,
  decodeValue,
  deserializeError,
  encodeValue,
  isRetryable,
  OnePipeError,
  parseDuration,
  registerPrimitive,
  resolveRetry,
  serializeError,
  stderrLogger,
  validate,
  ValidationError,
  type Component,
  type Database,
  type Duration,
  type Infer,
  type Logger,
  type RetryPolicy as CoreRetryPolicy,
  type RuntimeContext,
  type StandardSchemaV1,
} from '@onepipe/core'
import type { Hono } from 'hono'
import { mountChannelRoutes } from './http.js'
import { runAttempts, type AttemptStats, type RetryPolicy } from './retry.js'
import { claimKey, finishKey, listCalls, markWaiting, pruneCalls, recordCall, renewKey, sweepExpired, takeOverKey, type ChannelCall, type Outcome } from './store.js'
import { KeyWaiters, keyTag, NOTIFY } from './waiters.js'

/**
 * The same idempotency key was sent with different input: the stored call
 * is for other data, so neither its result nor a new run would be right.
 *
 * @example
 * ```ts
 * try { await pay.call(input) } catch (e) { if (e instanceof IdempotencyConflictError) … }
 * ```
 */
export class IdempotencyConflictError extends ConflictError {
  constructor(channel: string, key: string) {
    super('IDEMPOTENCY_CONFLICT', `Channel "${channel}": idempotency key "${key}" was already used with different input; use a new key for new input`, { channel, key })
  }
}

/**
 * What a channel handler receives besides its input.
 *
 * @example
 * ```ts
 * .handler(async (input, ctx) => fetch(url, { method: 'POST', body: JSON.stringify(input), signal: ctx.signal }))
 * ```
 */
export interface ChannelContext {
  channel: string
  /** Aborted when the attempt runs past `.timeout()`: stop work and return. */
  signal: AbortSignal
  /** 1 for the first attempt, 2 for the first retry… */
  attempt: number
  idempotencyKey: string | undefined
  db: Database | undefined
  logger: Logger
}

/**
 * Per-call options.
 *
 * @example
 * ```ts
 * await pay.call(input, { idempotencyKey: req.headers['idempotency-key'] })
 * ```
 */
export interface CallOptions {
  /** Overrides the key computed by `.idempotency(fn)` (the HTTP `Idempotency-Key` header). */
  idempotencyKey?: string
}

interface IdempotencyConfig {
  key: (input: unknown) => string | number
  ttlMs: number
  leaseMs: number
}

interface ChannelConfig {
  name: string
  input: StandardSchemaV1 | undefined
  output: StandardSchemaV1 | undefined
  db: Database | undefined
  idempotency: IdempotencyConfig | undefined
  retry: RetryPolicy
  timeoutMs: number | undefined
  history: boolean
  handler: (input: unknown, ctx: ChannelContext) => unknown
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
const MAX_KEY = 512
/** Longest a waiting duplicate goes without looking at the row again (a missed notification, a dead owner). */
const RECHECK_MS = 2000
/** How long a timed-out attempt may take to honour its abort before the call gives up without retrying. */
const GRACE_MS = 1000
/** How long history rows are kept. */
const HISTORY_KEEP_MS = 7 * 86_400_000

/** JSON with sorted object keys, so equal input hashes equally whatever its key order. */
function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === 'object' && !Array.isArray(val) ? Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : val,
  )
}

/**
 * An RPC endpoint: validated input, a handler with timeout and retries, and
 * optional idempotency by key. With a key the handler runs once: the first
 * call claims a pending row (with a lease), concurrent duplicates wait for
 * its outcome through LISTEN/NOTIFY, later duplicates get the stored result
 * until the key expires, and a pending key whose owner died is taken over
 * when its lease runs out. The call fails when the database is unreachable;
 * it never runs unguarded.
 *
 * A terminal (non-retryable) failure is stored and replayed to duplicates;
 * a retryable failure that used up its attempts releases the key, so a
 * later call with the same key runs again.
 *
 * @example
 * ```ts
 * const pay = Channel.create('process-payment')
 *   .input(z.object({ orderId: z.string(), amount: z.number() }))
 *   .db(db)
 *   .idempotency((i) => i.orderId, { ttl: '24h' })
 *   .retry({ attempts: 3, backoff: 'exponential', delay: '200ms' })
 *   .timeout('30s')
 *   .handler(async (i, ctx) => chargeCard(i, { signal: ctx.signal }))
 *   .build()
 * await pay.call({ orderId: '123', amount: 99 }) // runs
 * await pay.call({ orderId: '123', amount: 99 }) // the stored result
 * ```
 */
export class Channel<I = unknown, O = unknown> implements Component {
  readonly kind = 'channel'
  readonly name: string
  readonly #c: ChannelConfig
  #db: Database | undefined
  #log: Logger = stderrLogger
  #waiters: KeyWaiters | undefined
  #background = new Set<Promise<unknown>>()
  #sweep: NodeJS.Timeout | undefined

  /** @internal Use {@link Channel.create}. */
  constructor(c: ChannelConfig) {
    this.#c = c
    this.name = c.name
    this.#db = c.db
  }

  /**
   * Starts a channel builder.
   *
   * @example
   * ```ts
   * const echo = Channel.create('echo').handler(async (i) => i).build()
   * ```
   */
  static create(name: string): ChannelBuilder<unknown, unknown> {
    return new ChannelBuilder(name)
  }

  get #database(): Database {
    if (this.#db) return this.#db
    throw new ConfigError('CHANNEL_NO_DB', `Channel "${this.name}" uses idempotency but has no database: give it .db(db) or pass it to serve({ channels })`)
  }

  /**
   * Calls the channel: validates the input (a ValidationError with the field
   * path, nothing recorded), then runs the handler, once per idempotency key.
   *
   * @example
   * ```ts
   * const receipt = await pay.call({ orderId: '123', amount: 99 })
   * ```
   */
  async call(input: I, options: CallOptions = {}): Promise<O> {
    const value = this.#c.input ? await validate(this.#c.input, input, `input of channel "${this.name}"`) : input
    encodeValue(value, { subject: `input of channel "${this.name}"`, allowUndefined: true })
    const idem = this.#c.idempotency
    if (!idem && options.idempotencyKey === undefined) return this.#plain(value)
    const key = this.#keyOf(value, options.idempotencyKey)
    const hash = createHash('sha256').update(stableJson(value) ?? 'undefined').digest('base64url')
    return this.#once(value, key, hash, idem)
  }

  #keyOf(value: unknown, override: string | undefined): string {
    const raw = override ?? this.#c.idempotency?.key(value)
    const key = typeof raw === 'number' ? String(raw) : raw
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY) {
      throw new ValidationError(`idempotency key of channel "${this.name}"`, [{ path: override !== undefined ? 'Idempotency-Key' : '', message: `must be a non-empty string of at most ${MAX_KEY} characters` }])
    }
    return key
  }

  /** A call without idempotency: attempts, then a history row when the channel has a database. */
  async #plain(value: unknown): Promise<O> {
    const t0 = performance.now()
    const stats: AttemptStats = { attempts: 0, stillRunning: undefined }
    const db = this.#c.history ? this.#db : undefined
    try {
      const { value: out } = await this.#attempts(value, undefined, stats)
      if (db) await recordCall(db, { channel: this.name, status: 'completed', attempts: stats.attempts, durationMs: Math.round(performance.now() - t0), error: null })
      return out
    } catch (err) {
      if (db) await recordCall(db, { channel: this.name, status: 'failed', attempts: stats.attempts, durationMs: Math.round(performance.now() - t0), error: serializeError(err) })
      throw err
    }
  }

  /**
   * Runs the handler (with retries) and returns its result as stored: the
   * JSON text (undefined for a handler that returned nothing) and the value
   * read back from it, so the first caller sees exactly what every replay
   * will. A result that cannot round-trip is the handler's bug: a terminal
   * `INVALID_RESULT` (500), recorded like any other terminal failure.
   */
  async #attempts(value: unknown, key: string | undefined, stats: AttemptStats): Promise<{ value: O; text: string | undefined }> {
    const c = this.#c
    const out = await runAttempts(
      (signal, attempt) => Promise.resolve(c.handler(value, { channel: this.name, signal, attempt, idempotencyKey: key, db: this.#db, logger: this.#log })),
      c.retry,
      c.timeoutMs,
      GRACE_MS,
      `Channel "${this.name}"`,
      stats,
    )
    let result: unknown = out
    if (c.output) {
      try {
        result = await validate(c.output, out, `output of channel "${this.name}"`)
      } catch (e) {
        // The handler broke its own contract: a server bug, not the caller's input.
        throw new OnePipeError('CHANNEL_BAD_OUTPUT', (e as Error).message, { status: 500, retryable: false, details: { issues: (e as ValidationError).issues } })
      }
    }
    const text = encodeValue(result, { subject: `result of channel "${this.name}"`, code: 'INVALID_RESULT', status: 500, allowUndefined: true })
    return { value: decodeValue<O>(text), text }
  }

  /** The idempotent path: claim the key, or wait for / replay its owner's outcome. */
  async #once(value: unknown, key: string, hash: string, idem: IdempotencyConfig | undefined): Promise<O> {
    const db = this.#database
    const leaseMs = idem?.leaseMs ?? 30_000
    const ttlMs = idem?.ttlMs ?? 86_400_000
    this.#waiters ??= new KeyWaiters(db)
    const tag = keyTag(this.name, key)
    for (;;) {
      const waiter = this.#waiters.register(tag)
      try {
        const owner = randomUUID()
        const a = { channel: this.name, key, hash, owner, leaseMs, ttlMs }
        const claim = await claimKey(db, a)
        if (claim.claimed) return await this.#runOwned(db, value, key, owner, tag, leaseMs)
        const row = claim.row
        if (!row) continue // a concurrent claim committed after this statement's snapshot
        if (row.expired || (row.status === 'pending' && row.leaseMsLeft <= 0 && row.inputHash === hash)) {
          // Expired, or its owner died: whoever takes the row lock first runs it.
          if (await takeOverKey(db, a)) return await this.#runOwned(db, value, key, owner, tag, leaseMs)
          continue
        }
        if (row.inputHash !== hash) throw new IdempotencyConflictError(this.name, key)
        if (row.status === 'completed') return decodeValue<O>(row.result)
        if (row.status === 'failed') throw deserializeError(row.error ?? { name: 'Error', code: 'UNKNOWN', message: 'failed', status: 500, retryable: false })
        // Pending: listen first, then ask the owner to notify, then wait (with a slow re-check as a fallback).
        await this.#waiters.ready()
        const left = await markWaiting(db, this.name, key)
        if (left === undefined) continue
        await waiter.wait(Math.max(20, Math.min(RECHECK_MS, left + 20)))
      } finally {
        waiter.cancel()
      }
    }
  }

  /** Runs the handler for a claimed key while renewing its lease, then records the outcome. */
  async #runOwned(db: Database, value: unknown, key: string, owner: string, tag: string, leaseMs: number): Promise<O> {
    const t0 = performance.now()
    let lost = false
    const renew = setInterval(() => {
      renewKey(db, this.name, key, owner, leaseMs).then(
        (ok) => {
          if (!ok && !lost) {
            lost = true
            this.#log.warn({ channel: this.name, key }, 'channel: the idempotency lease was lost while the handler ran (another instance may run it too); make the lease longer than the handler takes')
          }
        },
        (err: unknown) => this.#log.error({ err, channel: this.name, key }, 'channel: could not renew the idempotency lease'),
      )
    }, Math.max(50, Math.floor(leaseMs / 3)))
    const stats: AttemptStats = { attempts: 0, stillRunning: undefined }
    const finish = async (o: Pick<Outcome, 'status' | 'result' | 'error'>) => {
      const outcome: Outcome = { channel: this.name, key, owner, notifyChannel: db.channel(NOTIFY), notifyPayload: tag, attempts: stats.attempts, durationMs: Math.round(performance.now() - t0), ...o }
      // The handler already ran: losing its outcome would let a duplicate run it again after the
      // lease, so a transient database error is retried (within the lease) before giving up.
      for (let i = 0; ; i++) {
        try {
          await finishKey(db, outcome)
          return
        } catch (e) {
          if (!isRetryable(e) || i >= 3) throw e
          await new Promise((r) => setTimeout(r, 100 * 2 ** i))
        }
      }
    }
    try {
      const out = await this.#attempts(value, key, stats)
      clearInterval(renew)
      await finish({ status: 'completed', result: out.text ?? null, error: null })
      return out.value
    } catch (err) {
      const status = isRetryable(err) ? 'released' : 'failed'
      const stray = stats.stillRunning
      if (stray) {
        // Keep the key (and its lease) until the stray attempt really ends, so no other run overlaps it.
        const done = stray.then(() => clearInterval(renew)).then(() => finish({ status, result: null, error: serializeError(err) }))
        this.#track(done.catch((e: unknown) => this.#log.error({ err: e, channel: this.name, key }, 'channel: could not record the outcome of a timed-out call')))
      } else {
        clearInterval(renew)
        await finish({ status, result: null, error: serializeError(err) })
      }
      throw err
    }
  }

  #track(p: Promise<unknown>): void {
    this.#background.add(p)
    void p.finally(() => this.#background.delete(p))
  }

  /**
   * Recent executed calls (the handler ran), newest first.
   *
   * @example
   * ```ts
   * const last = await pay.history({ limit: 20 })
   * ```
   */
  async history(options: { limit?: number } = {}): Promise<ChannelCall[]> {
    if (!this.#db) throw new ConfigError('CHANNEL_NO_DB', `Channel "${this.name}" records no history without a database: give it .db(db) or pass it to serve({ channels })`)
    return listCalls(this.#db, this.name, options.limit ?? 50)
  }

  /** Uses the app's database unless `.db()` was given; sweeps expired keys and history older than 7 days every minute (called by `serve()`). */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#log = rt.logger.child({ channel: this.name })
    this.#db ??= rt.db
    const db = this.#db
    clearInterval(this.#sweep)
    this.#sweep = setInterval(() => {
      Promise.all([sweepExpired(db, this.name), pruneCalls(db, this.name, HISTORY_KEEP_MS)]).catch((err: unknown) =>
        this.#log.error({ err, channel: this.name }, 'channel: sweeping expired keys and old history failed'),
      )
    }, 60_000)
    this.#sweep.unref()
  }

  /** Waits for stray timed-out attempts, stops listening (called by `serve()`). */
  async detach(): Promise<void> {
    clearInterval(this.#sweep)
    await Promise.allSettled([...this.#background])
    await this.#waiters?.close()
    this.#waiters = undefined
  }

  /**
   * Releases the channel's listener and timers.
   *
   * @example
   * ```ts
   * await pay.close()
   * ```
   */
  close(): Promise<void> {
    return this.detach()
  }

  /** Mounts `POST /rpc/{name}` and `GET /rpc/{name}` (called by `serve()`, which applies auth to `/rpc/*`). */
  routes(app: unknown, rt?: RuntimeContext): void {
    if (rt) this.#db ??= rt.db
    mountChannelRoutes(app as Hono, this, rt?.logger ?? stderrLogger)
  }
}

/**
 * Fluent configuration for a {@link Channel}.
 *
 * @example
 * ```ts
 * Channel.create('quote').input(z.object({ sku: z.string() })).handler(async (i) => price(i.sku)).build()
 * ```
 */
export class ChannelBuilder<I, O> {
  #c: Omit<ChannelConfig, 'handler'> & { handler: ChannelConfig['handler'] | undefined }

  constructor(name: string) {
    if (!NAME.test(name)) throw new ConfigError('CHANNEL_BAD_NAME', `Channel name "${name}" is invalid: use letters, digits, "_", "-" or "." (up to 128)`)
    this.#c = { name, input: undefined, output: undefined, db: undefined, idempotency: undefined, retry: { attempts: 1, backoff: 'exponential', delayMs: 100, maxDelayMs: 30_000 }, timeoutMs: undefined, history: true, handler: undefined }
  }

  /** Validates the input (Zod, Valibot… any Standard Schema). @example `.input(z.object({ orderId: z.string() }))` */
  input<S extends StandardSchemaV1>(schema: S): ChannelBuilder<Infer<S>, O> {
    this.#c.input = schema
    return this as unknown as ChannelBuilder<Infer<S>, O>
  }

  /** Validates what the handler returns. @example `.output(z.object({ chargeId: z.string() }))` */
  output<S extends StandardSchemaV1>(schema: S): ChannelBuilder<I, Infer<S>> {
    this.#c.output = schema
    return this as unknown as ChannelBuilder<I, Infer<S>>
  }

  /** The database for idempotency keys and history (default: the app's, under `serve()`). @example `.db(db)` */
  db(db: Database): this {
    this.#c.db = assertDatabase(db, `Channel "${this.#c.name}"`)
    return this
  }

  /**
   * Runs the handler once per key: `ttl` is how long a finished call's
   * result is replayed (default 24 h); `lease` how long a pending key stays
   * claimed without renewal before another instance may take it over
   * (default 30 s, renewed every third of it).
   *
   * @example
   * ```ts
   * .idempotency((i) => i.orderId, { ttl: '24h' })
   * ```
   */
  idempotency(key: (input: I) => string | number, options: { ttl?: Duration; lease?: Duration } = {}): this {
    this.#c.idempotency = { key: key as (input: unknown) => string | number, ttlMs: parseDuration(options.ttl ?? '24h'), leaseMs: parseDuration(options.lease ?? '30s') }
    return this
  }

  /** Retries retryable failures with backoff and jitter (a TerminalError stops at once). @example `.retry({ attempts: 3, backoff: 'exponential', delay: '200ms' })` */
  retry(o: CoreRetryPolicy & { attempts: number }): this {
    this.#c.retry = resolveRetry(o, this.#c.retry)
    return this
  }

  /** Aborts an attempt (through `ctx.signal`) that runs longer than this. @example `.timeout('30s')` */
  timeout(d: Duration): this {
    this.#c.timeoutMs = parseDuration(d)
    return this
  }

  /** Record executed calls for `history()` when the channel has a database (default true). @example `.history(false)` */
  history(on: boolean): this {
    this.#c.history = on
    return this
  }

  /** The work. @example `.handler(async (input, ctx) => charge(input, ctx.signal))` */
  handler<R>(fn: (input: I, ctx: ChannelContext) => R | Promise<R>): ChannelBuilder<I, unknown extends O ? R : O> {
    this.#c.handler = fn as ChannelConfig['handler']
    return this as unknown as ChannelBuilder<I, unknown extends O ? R : O>
  }

  /** Validates and registers the channel. @example `const pay = builder.build()` */
  build(): Channel<I, O> {
    const c = this.#c
    if (!c.handler) throw new ConfigError('CHANNEL_NO_HANDLER', `Channel "${c.name}" has no handler: add .handler(async (input, ctx) => …)`)
    registerPrimitive({
      primitive: 'channel',
      name: c.name,
      infrastructure: c.idempotency || c.db ? ['postgresql'] : ['none'],
      config: { route: `/rpc/${c.name}`, idempotency: c.idempotency ? { ttlMs: c.idempotency.ttlMs, leaseMs: c.idempotency.leaseMs } : null, retry: c.retry, timeoutMs: c.timeoutMs ?? null },
    })
    return new Channel<I, O>({ ...c, handler: c.handler })
  }
}
