import { createHash, randomUUID } from 'node:crypto'
import {
  assertDatabase,
  ConfigError,
  ConflictError,
  activeSpan,
  checkText,
  decodeValue,
  deserializeError,
  encodeValue,
  engineMetrics,
  isRetryable,
  OnePipeError,
  parseDuration,
  registerPrimitive,
  resolveRetry,
  retryDelay,
  serializeError,
  stderrLogger,
  tracingEnabled,
  validate,
  ValidationError,
  withSpan,
  type Component,
  type Database,
  type Duration,
  type Infer,
  type Logger,
  type Queryable,
  type RetryPolicy as CoreRetryPolicy,
  type RuntimeContext,
  type SerializedError,
  type StandardSchemaV1,
} from '@onepipe/core'
import type { Hono } from 'hono'
import { mountChannelRoutes } from './http.js'
import { runAttempts, type AttemptStats, type RetryPolicy } from './retry.js'
import {
  claimKey,
  finishKey,
  limitStatements,
  listCalls,
  markHandlerStart,
  markWaiting,
  pruneCalls,
  recordCall,
  renewKey,
  sweepExpired,
  takeOverKey,
  undoHandler,
  type ChannelCall,
  type KeyRow,
  type Outcome,
} from './store.js'
import { guardTransaction } from './tx.js'
import { KeyWaiters, keyTag, NOTIFY, RECHECK_MS } from './waiters.js'

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
 * What a transactional handler receives (see {@link ChannelBuilder.transactional}):
 * `tx` instead of `db`, so its writes join the transaction that claims the
 * key and records the result.
 *
 * @example
 * ```ts
 * .transactional()
 * .handler(async (i, ctx) => {
 *   await ctx.tx.execute('INSERT INTO payments (order_id, amount) VALUES ($1, $2)', [i.orderId, i.amount])
 *   return { paid: true }
 * })
 * ```
 */
export interface TransactionalContext extends Omit<ChannelContext, 'db'> {
  /**
   * The call's transaction: the key's claim, these statements and the
   * recorded result commit together or not at all. Send every statement of
   * the handler through it, never through the database itself (on the
   * embedded PGlite, which has one connection, that waits for this very
   * transaction forever). Refuses statements once the attempt is over.
   */
  tx: Queryable
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

/** @internal Everything a built Channel runs with. */
export interface ChannelConfig {
  name: string
  input: StandardSchemaV1 | undefined
  output: StandardSchemaV1 | undefined
  db: Database | undefined
  idempotency: IdempotencyConfig | undefined
  retry: RetryPolicy
  timeoutMs: number | undefined
  history: boolean
  /** Each attempt runs in one transaction with the key's claim and its outcome. */
  transactional: boolean
  /** Longest a duplicate waiting on another instance's lease goes without looking at the row again. */
  recheckMs: number
  /** Gets a {@link ChannelContext}, or a {@link TransactionalContext} when `transactional`. */
  handler: (input: unknown, ctx: never) => unknown
}

/** The key, input hash and expiry of an idempotent call. */
interface Keyed {
  key: string
  hash: string
  ttlMs: number
  leaseMs: number
}

/** A key's committed outcome for one input: what every call with that key and input answers. */
type Settled = { kind: 'completed'; text: string | null } | { kind: 'failed'; error: SerializedError } | { kind: 'conflict' }

/**
 * What one transaction of a transactional call ended with (it committed).
 * `recorded` settles with the statement that stored the result when it was
 * sent with the COMMIT: a rejection means the COMMIT rolled back instead.
 */
type TxStep<O> = { kind: 'done'; value: O; text: string | undefined; recorded: Promise<void> } | { kind: 'failed'; error: unknown } | { kind: 'stored'; row: KeyRow }

/** What a transactional attempt learned besides its outcome, for the retry decision and history. */
interface TxRun {
  attempts: number
  /** The handler started in this attempt (so a history row is due). */
  ran: boolean
  /** The handler ignored its abort and is still running. */
  stray: Promise<unknown> | undefined
  /** A statement of the handler failed: the driver rolls the transaction back whatever follows. */
  statementFailed: boolean
  /** The terminal failure to record after the rollback, when a failed statement kept it out of the transaction. */
  terminal: { error: unknown } | undefined
}

/** A transactional call's claim on its key: the row it inserts, and when the call began. */
interface Claim {
  channel: string
  key: string
  hash: string
  owner: string
  leaseMs: number
  ttlMs: number
  t0: number
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
const MAX_KEY = 512
const ONE_ATTEMPT: RetryPolicy = { attempts: 1, backoff: 'fixed', delayMs: 0, maxDelayMs: 0 }
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
/** How long a timed-out attempt may take to honour its abort before the call gives up without retrying. */
const GRACE_MS = 1000
/** How long history rows are kept. */
const HISTORY_KEEP_MS = 7 * 86_400_000

/** Whether a row someone else claimed may be taken over: it expired, or its lease ran out with the same input (its owner died). */
function takeable(row: KeyRow, hash: string): boolean {
  return row.expired || (row.status === 'pending' && row.leaseMsLeft <= 0 && row.inputHash === hash)
}

/** What a row someone else claimed means for a call with input `hash`; undefined while it is pending. */
function settledOf(row: KeyRow, hash: string): Settled | undefined {
  if (row.inputHash !== hash) return { kind: 'conflict' }
  if (row.status === 'completed') return { kind: 'completed', text: row.result }
  if (row.status === 'failed') return { kind: 'failed', error: row.error ?? { name: 'Error', code: 'UNKNOWN', message: 'failed', status: 500, retryable: false } }
  return undefined
}

/** A recorded failure as duplicates will see it, with what was really thrown kept as its `cause` (for stack traces). */
function asRecorded(recorded: SerializedError, original: unknown): OnePipeError {
  const e = deserializeError(recorded)
  Object.defineProperty(e, 'cause', { value: original, enumerable: false, configurable: true })
  return e
}

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
  readonly #c: ChannelConfig
  #db: Database | undefined
  #log: Logger = stderrLogger
  #waiters: KeyWaiters | undefined
  /** Transactional calls running a key in this process, each resolving with the key's outcome once committed. */
  readonly #inFlight = new Map<string, Promise<{ hash: string; settled: Settled } | undefined>>()
  #background = new Set<Promise<unknown>>()
  #sweep: NodeJS.Timeout | undefined
  readonly #metrics: { completed: { inc(): void }; failed: { inc(): void }; replays: { inc(): void } }

  /** @internal Use {@link Channel.create}. */
  constructor(c: ChannelConfig) {
    this.#c = c
    this.name = c.name
    this.#db = c.db
    const calls = engineMetrics.channelCalls
    this.#metrics = { completed: calls.with(c.name, 'completed'), failed: calls.with(c.name, 'failed'), replays: engineMetrics.channelReplays.with(c.name) }
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
    throw new ConfigError('CHANNEL_NO_DB', `Channel "${this.name}" uses idempotency or .transactional() but has no database: give it .db(db) or pass it to serve({ channels })`)
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
    const value = this.#c.input ? await validate(this.#c.input, input, `input of channel "${this.name}"`) : input
    encodeValue(value, { subject: `input of channel "${this.name}"`, allowUndefined: true })
    const idem = this.#c.idempotency
    if (!idem && options.idempotencyKey === undefined) return this.#c.transactional ? this.#transactionalPlain(value) : this.#plain(value)
    const key = this.#keyOf(value, options.idempotencyKey)
    const hash = createHash('sha256').update(stableJson(value) ?? 'undefined').digest('base64url')
    const keyed = { key, hash, ttlMs: idem?.ttlMs ?? 86_400_000, leaseMs: idem?.leaseMs ?? 30_000 }
    return this.#c.transactional ? this.#transactionalOnce(value, keyed) : this.#once(value, keyed)
  }

  #keyOf(value: unknown, override: string | undefined): string {
    const raw = override ?? this.#c.idempotency?.key(value)
    const key = typeof raw === 'number' ? String(raw) : raw
    return checkText(key, { subject: `idempotency key of channel "${this.name}"`, path: override !== undefined ? 'Idempotency-Key' : '', max: MAX_KEY })
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
    const handler = c.handler as (input: unknown, ctx: ChannelContext) => unknown
    const out = await runAttempts(
      (abort, attempt) =>
        this.#handleSpan(attempt, () =>
          Promise.resolve(
            handler(value, {
              channel: this.name,
              get signal() {
                return abort.signal
              },
              attempt,
              idempotencyKey: key,
              db: this.#db,
              logger: this.#log,
            }),
          ),
        ),
      c.retry,
      c.timeoutMs,
      GRACE_MS,
      `Channel "${this.name}"`,
      stats,
    )
    return this.#stored(out)
  }

  /** One run of the handler as a span (a child of the call's), so what the handler does nests under it. */
  #handleSpan<R>(attempt: number, run: () => Promise<R>): Promise<R> {
    if (!tracingEnabled()) return run()
    return withSpan(`channel.handle ${this.name}`, { kind: 'server', attributes: { 'onepipe.channel': this.name, 'onepipe.channel.attempt': attempt, 'rpc.system': 'onepipe', 'rpc.method': this.name } }, run)
  }

  /** Checks a handler's result against `.output()` and the value rule; answers it as stored and as read back. */
  async #stored(out: unknown): Promise<{ value: O; text: string | undefined }> {
    const c = this.#c
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
  async #once(value: unknown, k: Keyed): Promise<O> {
    const { key, hash, leaseMs, ttlMs } = k
    const db = this.#database
    const waiters = this.#keyWaiters(db)
    const tag = keyTag(this.name, key)
    for (;;) {
      const waiter = waiters.register(tag)
      try {
        const owner = randomUUID()
        const a = { channel: this.name, key, hash, owner, leaseMs, ttlMs }
        const claim = await claimKey(db, a)
        if (claim.claimed) return await this.#runOwned(db, value, key, owner, tag, leaseMs)
        const row = claim.row
        if (!row) continue // a concurrent claim committed after this statement's snapshot
        if (takeable(row, hash)) {
          // Expired, or its owner died: whoever takes the row lock first runs it.
          if (await takeOverKey(db, a)) return await this.#runOwned(db, value, key, owner, tag, leaseMs)
          continue
        }
        const settled = settledOf(row, hash)
        if (settled) return this.#replay(settled, key)
        await this.#awaitOwner(db, key, waiter)
      } finally {
        waiter.cancel()
      }
    }
  }

  #keyWaiters(db: Database): KeyWaiters {
    return (this.#waiters ??= new KeyWaiters(db, this.#c.recheckMs))
  }

  /**
   * Waits until the owner of a pending key (alive, its lease running)
   * notifies, the listener reconnects, or the re-check time passes. Listens
   * first, then asks the owner to notify: a key finished in between is seen
   * by `markWaiting`, and one finished after by the notification.
   */
  async #awaitOwner(db: Database, key: string, waiter: ReturnType<KeyWaiters['register']>): Promise<void> {
    const waiters = this.#keyWaiters(db)
    await waiters.ready()
    const left = await markWaiting(db, this.name, key)
    if (left === undefined) return
    await waiter.wait(Math.max(20, Math.min(waiters.recheckMs, left + 20)))
  }

  /** What a call answers for a key's committed outcome: the result, the recorded error, or a conflict. */
  #replay(s: Settled, key: string): O {
    if (s.kind !== 'conflict') {
      this.#metrics.replays.inc()
      activeSpan()?.setAttribute('onepipe.channel.replayed', true)
    }
    if (s.kind === 'completed') return decodeValue<O>(s.text)
    if (s.kind === 'failed') throw deserializeError(s.error)
    throw new IdempotencyConflictError(this.name, key)
  }

  /**
   * A transactional call with a key. In this process one call per key runs
   * at a time: the others wait for it in memory, holding no connection, and
   * answer its committed outcome when their input is the same (or look at
   * the key themselves once it is decided). A duplicate in another process
   * blocks on the uncommitted claim, and reads the outcome once it commits.
   */
  async #transactionalOnce(value: unknown, k: Keyed): Promise<O> {
    const tag = keyTag(this.name, k.key)
    for (let ahead = this.#inFlight.get(tag); ahead; ahead = this.#inFlight.get(tag)) {
      const before = await ahead
      if (before && before.hash === k.hash) return this.#replay(before.settled, k.key)
    }
    let settled: Settled | undefined
    const run = this.#transactionalKeyed(value, k, tag, (s) => (settled = s))
    const decided = () => {
      // Gone from the map before anyone waiting on it resumes, so the next in line finds the key free.
      if (this.#inFlight.get(tag) === entry) this.#inFlight.delete(tag)
      return settled && { hash: k.hash, settled }
    }
    const entry = run.then(decided, decided)
    this.#inFlight.set(tag, entry)
    return run
  }

  /**
   * The attempts of a transactional call with a key, each one transaction.
   * A retryable failure rolls everything back, the key included, before the
   * next attempt; a crash does the same. `share` gets the outcome once it is
   * committed, for the calls waiting in this process.
   */
  async #transactionalKeyed(value: unknown, k: Keyed, tag: string, share: (s: Settled) => void): Promise<O> {
    const db = this.#database
    const policy = this.#c.retry
    const claim: Claim = { channel: this.name, key: k.key, hash: k.hash, owner: randomUUID(), leaseMs: k.leaseMs, ttlMs: k.ttlMs, t0: performance.now() }
    for (let attempt = 1; ; ) {
      const run: TxRun = { attempts: attempt, ran: false, stray: undefined, statementFailed: false, terminal: undefined }
      let step: TxStep<O>
      try {
        step = await db.transaction((tx) => this.#claimAndRun(tx, value, claim, run))
        if (step.kind === 'done') await step.recorded
      } catch (err) {
        if (run.terminal) {
          // A failed statement doomed the transaction, so the terminal failure could not be recorded in it.
          const recorded = serializeError(run.terminal.error)
          if (await this.#recordTerminal(db, claim, run)) share({ kind: 'failed', error: recorded })
          // The first caller gets the failure exactly as every replay will.
          throw asRecorded(recorded, run.terminal.error)
        }
        if (run.stray || !isRetryable(err) || attempt >= policy.attempts) {
          if (run.ran) await this.#recordRolledBack(db, claim.key, run, claim.t0, err)
          throw err
        }
        await sleep(retryDelay(policy, attempt))
        attempt++
        continue
      }
      if (step.kind === 'done') {
        share({ kind: 'completed', text: step.text ?? null })
        return step.value
      }
      if (step.kind === 'failed') {
        const recorded = serializeError(step.error)
        share({ kind: 'failed', error: recorded })
        throw asRecorded(recorded, step.error)
      }
      const settled = settledOf(step.row, k.hash)
      if (settled) {
        share(settled)
        return this.#replay(settled, k.key)
      }
      // Pending and committed: a lease-mode owner (a channel of this name without
      // .transactional(), during a rolling deploy). Wait for it outside any transaction.
      const waiter = this.#keyWaiters(db).register(tag)
      try {
        await this.#awaitOwner(db, k.key, waiter)
      } finally {
        waiter.cancel()
      }
    }
  }

  /**
   * One transaction: claims the key (or finds its committed outcome), runs
   * the handler on the transaction and records the result with it. A
   * terminal failure undoes the handler's writes back to the savepoint taken
   * with the claim and records the error in the same transaction, so the key
   * never looks free to a duplicate blocked on it. Throws (rolling back, key
   * included) for a retryable failure, a handler still running after its
   * timeout, or a terminal failure after a failed statement (`run.terminal`).
   */
  async #claimAndRun(tx: Queryable, value: unknown, claim: Claim, run: TxRun): Promise<TxStep<O>> {
    const timeoutMs = this.#c.timeoutMs
    // The savepoint (and the statement limit) go out in the same round trip as the claim.
    const marks = () => [markHandlerStart(tx), ...(timeoutMs === undefined ? [] : [limitStatements(tx, timeoutMs + GRACE_MS)])]
    for (;;) {
      const [c] = await Promise.all([claimKey(tx, claim), ...marks()])
      if (c.claimed) break
      // No row: a concurrent claim committed after this statement's snapshot; the next statement sees it.
      if (!c.row) continue
      if (!takeable(c.row, claim.hash)) return { kind: 'stored', row: c.row }
      const [taken] = await Promise.all([takeOverKey(tx, claim), ...marks()])
      if (taken) break
    }
    let result: { value: O; text: string | undefined }
    try {
      result = await this.#inTx(tx, value, claim.key, run)
    } catch (err) {
      if (run.stray || isRetryable(err)) throw err
      if (run.statementFailed) {
        run.terminal = { error: err }
        throw err
      }
      await undoHandler(tx)
      await this.#finishInTx(tx, this.#outcome(claim, run, { status: 'failed', result: null, error: serializeError(err) }))
      return { kind: 'failed', error: err }
    }
    const recorded = this.#finishInTx(tx, this.#outcome(claim, run, { status: 'completed', result: result.text ?? null, error: null }))
    if (this.#database.kind !== 'postgres') await recorded
    // On PostgreSQL the result goes out in one write with the COMMIT, a round trip less. If it
    // failed, the transaction was aborted and PostgreSQL answers that COMMIT with a rollback.
    else recorded.catch(() => undefined)
    return { kind: 'done', ...result, recorded }
  }

  #outcome(claim: Claim, run: TxRun, o: Pick<Outcome, 'status' | 'result' | 'error'>): Outcome {
    const notifyChannel = this.#database.channel(NOTIFY)
    return { channel: this.name, key: claim.key, owner: claim.owner, notifyChannel, notifyPayload: keyTag(this.name, claim.key), attempts: run.attempts, durationMs: Math.round(performance.now() - claim.t0), ...o }
  }

  async #finishInTx(tx: Queryable, o: Outcome): Promise<void> {
    // The claim's row lock is held since the claim: nobody else can have changed the row.
    if (!(await finishKey(tx, o))) throw new OnePipeError('CHANNEL_KEY_LOST', `Channel "${this.name}": the claimed key "${o.key}" changed inside its own transaction`, { status: 500 })
  }

  /**
   * Records a terminal failure whose transaction rolled back, in a fresh
   * short one: claims the key again and stores the error. A duplicate that
   * was blocked on the key may have claimed it in between (its handler then
   * runs, and its outcome is the key's); answers whether this one was stored.
   */
  async #recordTerminal(db: Database, claim: Claim, run: TxRun): Promise<boolean> {
    const error = serializeError(run.terminal?.error)
    try {
      return await db.transaction(async (tx) => {
        const c = await claimKey(tx, claim)
        if (!c.claimed && !(c.row && takeable(c.row, claim.hash) && (await takeOverKey(tx, claim)))) return false
        await this.#finishInTx(tx, this.#outcome(claim, run, { status: 'failed', result: null, error }))
        return true
      })
    } catch (e) {
      this.#log.error({ err: e, channel: this.name, key: claim.key }, 'channel: could not record the terminal failure of a rolled-back call; a later call with its key runs again')
      await this.#recordRolledBack(db, claim.key, run, claim.t0, run.terminal?.error)
      return false
    }
  }

  /** Runs the handler once on the transaction (timeout through ctx.signal) and checks its result. */
  async #inTx(tx: Queryable, value: unknown, key: string | undefined, run: TxRun): Promise<{ value: O; text: string | undefined }> {
    const handler = this.#c.handler as (input: unknown, ctx: TransactionalContext) => unknown
    const guard = guardTransaction(tx, `Channel "${this.name}"`)
    const stats: AttemptStats = { attempts: 0, stillRunning: undefined }
    run.ran = true
    try {
      const out = await runAttempts(
        (abort) => {
          // A timed-out handler's later statements must not reach the transaction (nor, after it, the pool).
          abort.onAbort(guard.close)
          return this.#handleSpan(run.attempts, () =>
            Promise.resolve(
              handler(value, {
                channel: this.name,
                get signal() {
                  return abort.signal
                },
                attempt: run.attempts,
                idempotencyKey: key,
                logger: this.#log,
                tx: guard.tx,
              }),
            ),
          )
        },
        ONE_ATTEMPT,
        this.#c.timeoutMs,
        GRACE_MS,
        `Channel "${this.name}"`,
        stats,
      )
      guard.close()
      return await this.#stored(out)
    } finally {
      guard.close()
      run.stray = stats.stillRunning
      run.statementFailed = guard.failed()
    }
  }

  /** A transactional call without a key: each attempt runs the handler and appends its history row in one transaction. */
  async #transactionalPlain(value: unknown): Promise<O> {
    const db = this.#database
    const c = this.#c
    const t0 = performance.now()
    for (let attempt = 1; ; attempt++) {
      const run: TxRun = { attempts: attempt, ran: false, stray: undefined, statementFailed: false, terminal: undefined }
      try {
        return await db.transaction(async (tx) => {
          if (c.timeoutMs !== undefined) await limitStatements(tx, c.timeoutMs + GRACE_MS)
          const out = await this.#inTx(tx, value, undefined, run)
          if (c.history) await recordCall(tx, { channel: this.name, status: 'completed', attempts: attempt, durationMs: Math.round(performance.now() - t0), error: null })
          return out.value
        })
      } catch (err) {
        if (run.stray || !isRetryable(err) || attempt >= c.retry.attempts) {
          if (run.ran && c.history) await this.#recordRolledBack(db, undefined, run, t0, err)
          throw err
        }
        await sleep(retryDelay(c.retry, attempt))
      }
    }
  }

  /**
   * The history row of a transactional call whose last transaction rolled
   * back (its outcome row went with it). The caller gets the handler's error
   * either way: a failure to write this row is only logged.
   */
  async #recordRolledBack(db: Database, key: string | undefined, run: TxRun, t0: number, err: unknown): Promise<void> {
    try {
      await recordCall(db, { channel: this.name, ...(key === undefined ? {} : { key }), status: 'failed', attempts: run.attempts, durationMs: Math.round(performance.now() - t0), error: serializeError(err) })
    } catch (e) {
      this.#log.error({ err: e, channel: this.name, key }, 'channel: could not record the history of a rolled-back call')
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
      // A terminal failure is replayed to duplicates: the first caller gets it exactly as they will.
      throw status === 'failed' ? asRecorded(serializeError(err), err) : err
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
