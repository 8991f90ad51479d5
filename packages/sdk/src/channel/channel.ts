import { createHash } from 'node:crypto'
import {
  assertDatabase,
  ConfigError,
  checkText,
  encodeValue,
  engineMetrics,
  parseDuration,
  registerPrimitive,
  resolveRetry,
  serializeError,
  stderrLogger,
  tracingEnabled,
  validate,
  withSpan,
  type Component,
  type Database,
  type Duration,
  type Infer,
  type RetryPolicy as CoreRetryPolicy,
  type RuntimeContext,
  type StandardSchemaV1,
} from '@onepipe/core'
import type { Hono } from 'hono'
import { mountChannelRoutes } from './http.js'
import { callOnce } from './lease.js'
import type { AttemptStats } from './retry.js'
import { ChannelRunner } from './runner.js'
import { listCalls, listKeys, pruneCalls, recordCall, sweepExpired, type ChannelCall, type IdempotencyEntry } from './store.js'
import { TransactionalCalls } from './transactional.js'
import type { CallOptions, ChannelConfig, ChannelContext, TransactionalContext } from './types.js'
import { RECHECK_MS } from './waiters.js'

// The Channel and its builder; a call's plain path is here, its lease-mode idempotent
// path in lease.ts, its transactional paths in transactional.ts, and what they all share
// (the handler's attempts, replay of a key's outcome, database and logger) in runner.ts.

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
const MAX_KEY = 512
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
 * With `.transactional()` each attempt is instead one database transaction
 * that claims the key, runs the handler on `ctx.tx` and records the outcome:
 * one commit, and the handler's writes happen exactly once (see
 * {@link ChannelBuilder.transactional}).
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
  /** What the plain, lease and transactional paths share: config, database, logger, attempts, replay. */
  readonly #run: ChannelRunner<O>
  readonly #tx: TransactionalCalls<O>
  #sweep: NodeJS.Timeout | undefined
  readonly #metrics: { completed: { inc(): void }; failed: { inc(): void } }

  /** @internal Use {@link Channel.create}. */
  constructor(c: ChannelConfig) {
    this.name = c.name
    const calls = engineMetrics.channelCalls
    this.#metrics = { completed: calls.with(c.name, 'completed'), failed: calls.with(c.name, 'failed') }
    this.#run = new ChannelRunner<O>(c, engineMetrics.channelReplays.with(c.name))
    this.#tx = new TransactionalCalls(this.#run)
  }

  /** The input and output schemas given to the builder (for docs and the dashboard). */
  get schemas(): { input: StandardSchemaV1 | undefined; output: StandardSchemaV1 | undefined } {
    return { input: this.#run.c.input, output: this.#run.c.output }
  }

  /** Whether calls are deduplicated by an idempotency key (`.idempotency()`). */
  get idempotent(): boolean {
    return this.#run.c.idempotency !== undefined
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

  /**
   * Calls the channel: validates the input (a ValidationError with the field
   * path, nothing recorded), then runs the handler, once per idempotency key.
   *
   * @example
   * ```ts
   * const receipt = await pay.call({ orderId: '123', amount: 99 })
   * ```
   */
  call(input: I, options: CallOptions = {}): Promise<O> {
    // Untraced, a call pays for its two counters and nothing else.
    if (!tracingEnabled()) return this.#call(input, options).then(this.#completed, this.#failed)
    const attributes = { 'onepipe.channel': this.name, 'rpc.system': 'onepipe', 'rpc.method': this.name }
    return withSpan(`channel.call ${this.name}`, { kind: 'client', attributes }, () => this.#call(input, options).then(this.#completed, this.#failed))
  }

  readonly #completed = <T>(out: T): T => {
    this.#metrics.completed.inc()
    return out
  }

  readonly #failed = (e: unknown): never => {
    this.#metrics.failed.inc()
    throw e
  }

  async #call(input: I, options: CallOptions): Promise<O> {
    const c = this.#run.c
    const value = c.input ? await validate(c.input, input, `input of channel "${this.name}"`) : input
    encodeValue(value, { subject: `input of channel "${this.name}"`, allowUndefined: true })
    const idem = c.idempotency
    if (!idem && options.idempotencyKey === undefined) return c.transactional ? this.#tx.plain(value) : this.#plain(value)
    const key = this.#keyOf(value, options.idempotencyKey)
    const hash = createHash('sha256').update(stableJson(value) ?? 'undefined').digest('base64url')
    const keyed = { key, hash, ttlMs: idem?.ttlMs ?? 86_400_000, leaseMs: idem?.leaseMs ?? 30_000 }
    return c.transactional ? this.#tx.once(value, keyed) : callOnce(this.#run, value, keyed)
  }

  #keyOf(value: unknown, override: string | undefined): string {
    const raw = override ?? this.#run.c.idempotency?.key(value)
    const key = typeof raw === 'number' ? String(raw) : raw
    return checkText(key, { subject: `idempotency key of channel "${this.name}"`, path: override !== undefined ? 'Idempotency-Key' : '', max: MAX_KEY })
  }

  /** A call without idempotency: attempts, then a history row when the channel has a database. */
  async #plain(value: unknown): Promise<O> {
    const t0 = performance.now()
    const stats: AttemptStats = { attempts: 0, stillRunning: undefined }
    const db = this.#run.c.history ? this.#run.db : undefined
    try {
      const { value: out } = await this.#run.attempts(value, undefined, stats)
      if (db) await recordCall(db, { channel: this.name, status: 'completed', attempts: stats.attempts, durationMs: Math.round(performance.now() - t0), error: null })
      return out
    } catch (err) {
      if (db) await recordCall(db, { channel: this.name, status: 'failed', attempts: stats.attempts, durationMs: Math.round(performance.now() - t0), error: serializeError(err) })
      throw err
    }
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
    const db = this.#run.db
    if (!db) throw new ConfigError('CHANNEL_NO_DB', `Channel "${this.name}" records no history without a database: give it .db(db) or pass it to serve({ channels })`)
    return listCalls(db, this.name, options.limit ?? 50)
  }

  /**
   * Live idempotency entries (state and lifetime, never the stored
   * result), newest first; none for a channel without `.idempotency()`.
   *
   * @example
   * ```ts
   * const pending = (await pay.idempotencyKeys({ limit: 100 })).filter((k) => k.status === 'pending')
   * ```
   */
  async idempotencyKeys(options: { limit?: number } = {}): Promise<IdempotencyEntry[]> {
    const db = this.#run.db
    if (!db) throw new ConfigError('CHANNEL_NO_DB', `Channel "${this.name}" keeps no idempotency keys without a database: give it .db(db) or pass it to serve({ channels })`)
    return listKeys(db, this.name, options.limit ?? 50)
  }

  /** Uses the app's database unless `.db()` was given; sweeps expired keys and history older than 7 days every minute (called by `serve()`). */
  async attach(rt: RuntimeContext): Promise<void> {
    const run = this.#run
    run.log = rt.logger.child({ channel: this.name })
    run.db ??= rt.db
    const db = run.db
    clearInterval(this.#sweep)
    this.#sweep = setInterval(() => {
      Promise.all([sweepExpired(db, this.name), pruneCalls(db, this.name, HISTORY_KEEP_MS)]).catch((err: unknown) =>
        run.log.error({ err, channel: this.name }, 'channel: sweeping expired keys and old history failed'),
      )
    }, 60_000)
    this.#sweep.unref()
  }

  /** Waits for stray timed-out attempts, stops listening (called by `serve()`). */
  async detach(): Promise<void> {
    clearInterval(this.#sweep)
    await this.#run.settle()
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
    if (rt) this.#run.db ??= rt.db
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
export class ChannelBuilder<I, O, C = ChannelContext> {
  #c: Omit<ChannelConfig, 'handler'> & { handler: ChannelConfig['handler'] | undefined }

  constructor(name: string) {
    if (!NAME.test(name)) throw new ConfigError('CHANNEL_BAD_NAME', `Channel name "${name}" is invalid: use letters, digits, "_", "-" or "." (up to 128)`)
    this.#c = {
      name,
      input: undefined,
      output: undefined,
      db: undefined,
      idempotency: undefined,
      retry: { attempts: 1, backoff: 'exponential', delayMs: 100, maxDelayMs: 30_000 },
      timeoutMs: undefined,
      history: true,
      transactional: false,
      recheckMs: RECHECK_MS,
      handler: undefined,
    }
  }

  /** Validates the input (Zod, Valibot… any Standard Schema). @example `.input(z.object({ orderId: z.string() }))` */
  input<S extends StandardSchemaV1>(schema: S): ChannelBuilder<Infer<S>, O, C> {
    this.#c.input = schema
    return this as unknown as ChannelBuilder<Infer<S>, O, C>
  }

  /** Validates what the handler returns. @example `.output(z.object({ chargeId: z.string() }))` */
  output<S extends StandardSchemaV1>(schema: S): ChannelBuilder<I, Infer<S>, C> {
    this.#c.output = schema
    return this as unknown as ChannelBuilder<I, Infer<S>, C>
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

  /**
   * Runs each attempt in one database transaction: the key's claim, the
   * handler's writes (through `ctx.tx`) and the recorded result commit
   * together, once, instead of in three commits. So the handler's own
   * database writes happen exactly once per key: a call that fails with a
   * retryable error, times out (ctx.signal aborts) or whose process dies
   * mid-handler leaves nothing behind, the key included, and the next call
   * with that key runs it; a terminal failure undoes the handler's writes
   * and is recorded in the same transaction, then replayed. Concurrent
   * duplicates wait for the commit: in memory within one process, on the
   * key's row lock across processes (one connection per process and key).
   *
   * The handler holds a connection and an open transaction for its whole
   * run, so this suits handlers that mostly write to the same database. A
   * handler with side effects elsewhere (a payment over HTTP) keeps the
   * default lease mode, where nothing is held while it runs. Call it before
   * `.handler()`; needs a database (`.db()` or the app's under `serve()`).
   *
   * @example
   * ```ts
   * const pay = Channel.create('record-payment')
   *   .input(z.object({ orderId: z.string(), amount: z.number() }))
   *   .db(db)
   *   .idempotency((i) => i.orderId)
   *   .transactional()
   *   .handler(async (i, ctx) => {
   *     await ctx.tx.execute('INSERT INTO payments (order_id, amount) VALUES ($1, $2)', [i.orderId, i.amount])
   *     await ctx.tx.execute('UPDATE orders SET paid = true WHERE id = $1', [i.orderId])
   *     return { paid: true }
   *   })
   *   .build()
   * ```
   */
  transactional(): ChannelBuilder<I, O, TransactionalContext> {
    if (this.#c.handler) throw new ConfigError('CHANNEL_TRANSACTIONAL_ORDER', `Channel "${this.#c.name}": call .transactional() before .handler(), so the handler is typed for ctx.tx`)
    this.#c.transactional = true
    return this as unknown as ChannelBuilder<I, O, TransactionalContext>
  }

  /** Record executed calls for `history()` when the channel has a database (default true). @example `.history(false)` */
  history(on: boolean): this {
    this.#c.history = on
    return this
  }

  /** The work: gets a {@link ChannelContext}, or a {@link TransactionalContext} after `.transactional()`. @example `.handler(async (input, ctx) => charge(input, ctx.signal))` */
  handler<R>(fn: (input: I, ctx: C) => R | Promise<R>): ChannelBuilder<I, unknown extends O ? R : O, C> {
    this.#c.handler = fn as ChannelConfig['handler']
    return this as unknown as ChannelBuilder<I, unknown extends O ? R : O, C>
  }

  /** Validates and registers the channel. @example `const pay = builder.build()` */
  build(): Channel<I, O> {
    const c = this.#c
    if (!c.handler) throw new ConfigError('CHANNEL_NO_HANDLER', `Channel "${c.name}" has no handler: add .handler(async (input, ctx) => …)`)
    registerPrimitive({
      primitive: 'channel',
      name: c.name,
      infrastructure: c.idempotency || c.db || c.transactional ? ['postgresql'] : ['none'],
      config: {
        route: `/rpc/${c.name}`,
        idempotency: c.idempotency ? { ttlMs: c.idempotency.ttlMs, leaseMs: c.idempotency.leaseMs } : null,
        transactional: c.transactional,
        retry: c.retry,
        timeoutMs: c.timeoutMs ?? null,
      },
    })
    return new Channel<I, O>({ ...c, handler: c.handler })
  }
}
