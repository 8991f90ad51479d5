import { randomUUID } from 'node:crypto'
import {
  assertDatabase,
  currentTraceparent,
  encodeValue,
  engineMetrics,
  ConfigError,
  failSpan,
  isRetryable,
  parseDuration,
  registerPrimitive,
  stderrLogger,
  traceContext,
  tracingEnabled,
  validate,
  ValidationError,
  withSpan,
  type Component,
  type Database,
  type Logger,
  type OtelSpan,
  type Queryable,
  type RuntimeContext,
  type StandardSchemaV1,
} from '@onepipe/core'
import type { StreamsClient } from '@onepipe/streams'
import type { Hono } from 'hono'
import { mountFlowRoutes } from './http.js'
import { pause, pullEvents } from './pull.js'
import { PgFlowStore, type Gate } from './pg-store.js'
import { streamsFlowStore } from './streams-store.js'
import type { FlowAppendResult, FlowEvent, FlowStore, FlowReadOptions, FlowRetentionOptions, FlowStreamOptions, FlowSubscribeOptions, Unsubscribe } from './types.js'

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
const DEFAULT_LIMIT = 1000
const MAX_LIMIT = 10_000
/** The most events one appendAllIn stores (one statement). */
const MAX_IN_TX = 1000

interface FlowConfig {
  name: string
  schema: StandardSchemaV1 | undefined
  db: Database | undefined
  streams: StreamsClient | undefined
  maxAgeMs: number | undefined
  maxEvents: number | undefined
  sweepEveryMs: number
}

function checkCount(what: string, n: number | undefined, max: number): void {
  if (n === undefined) return
  if (!Number.isInteger(n) || n < 0 || n > max) throw new ValidationError('read options', [{ path: what, message: `must be an integer from 0 to ${max}` }])
}

/**
 * A durable, ordered event log. Offsets are assigned by the store and grow
 * strictly per flow across every instance; subscribers on every instance
 * receive every event in offset order, resumable from any offset, at the
 * pace they consume.
 *
 * @example
 * ```ts
 * const orders = Flow.create('orders').schema(z.object({ id: z.string(), total: z.number() })).db(db).build()
 * const { offset } = await orders.append({ id: 'o1', total: 42 })
 * const stop = orders.subscribe((e) => console.log(e.offset, e.data))
 * for await (const e of orders.stream({ offset: 0 })) console.log(e.data)
 * ```
 */
export class Flow<T = unknown> implements Component {
  readonly kind = 'flow'
  readonly name: string
  readonly #c: FlowConfig
  #store: FlowStore | undefined
  #logger: Logger = stderrLogger
  #subs = new Set<Unsubscribe>()
  #sweeper: AbortController | undefined
  #sweeping: Promise<void> | undefined
  readonly #appended: { inc(n?: number): void }

  /** @internal Use {@link Flow.create}. */
  constructor(c: FlowConfig) {
    this.#c = c
    this.name = c.name
    this.#appended = engineMetrics.flowAppends.with(c.name)
  }

  /**
   * Starts a flow builder.
   *
   * @example
   * ```ts
   * const clicks = Flow.create('clicks').db(db).build()
   * ```
   */
  static create(name: string): FlowBuilder<unknown> {
    return new FlowBuilder(name)
  }

  /** Where the events live: `postgres` with `.db()`, else `streams`. */
  get storage(): 'postgres' | 'streams' {
    return this.#c.db ? 'postgres' : 'streams'
  }

  /** @internal The store, created on first use. */
  get store(): FlowStore {
    this.#store ??= this.#c.db ? new PgFlowStore(this.#c.db, this.name) : streamsFlowStore(this.name, this.#c.streams)
    return this.#store
  }

  /** @internal The logger (the runtime's once attached). */
  get logger(): Logger {
    return this.#logger
  }

  /**
   * Validates and stores one event; resolves with its id and offset once it
   * is durable. Throws a ValidationError (nothing stored) for an invalid
   * event and a TransportError when the store is unreachable; an event is
   * never kept in memory instead.
   *
   * @example
   * ```ts
   * const { id, offset } = await orders.append({ id: 'o1', total: 42 })
   * ```
   */
  async append(data: T): Promise<FlowAppendResult> {
    const value = await this.#validate(data)
    const id = randomUUID()
    if (!tracingEnabled()) {
      const e = await this.store.append(id, value)
      this.#appended.inc()
      return { id: e.id, offset: e.offset }
    }
    const attributes = { 'messaging.system': 'onepipe', 'messaging.destination.name': this.name, 'messaging.operation.type': 'send', 'messaging.operation.name': 'append', 'messaging.message.id': id }
    // The event keeps this span's context, so whoever handles it, in any process, continues the trace.
    const e = await withSpan(`append ${this.name}`, { kind: 'producer', attributes }, async (span) => {
      const stored = await this.store.append(id, value, currentTraceparent())
      span?.setAttribute('onepipe.flow.offset', stored.offset)
      return stored
    })
    this.#appended.inc()
    return { id: e.id, offset: e.offset }
  }

  /**
   * Appends one event inside the caller's transaction `tx` (from
   * `db.transaction(fn)` on the database this flow was built with): the
   * event exists if and only if `tx` commits, so a change and the event
   * that announces it are never stored one without the other (an outbox).
   * The flow's counter row stays locked until `tx` ends: every other
   * appender of this flow waits for that commit, and offsets become visible
   * in commit order. Append last, just before the transaction commits.
   * The offset returned is final once `tx` commits; if it rolls back the
   * offset is handed to the next append.
   *
   * @throws ValidationError (nothing stored) for an invalid event; ConfigError `FLOW_APPEND_IN_NEEDS_DB`
   *   for a flow on the streams server, which cannot join a database transaction
   * @example
   * ```ts
   * await db.transaction(async (tx) => {
   *   await tx.execute('UPDATE orders SET status = $1 WHERE id = $2', ['shipped', 'o1'])
   *   const { offset } = await orders.appendIn(tx, { id: 'o1', status: 'shipped' }) // e.g. { id: '9b1…', offset: 42 }
   * })
   * ```
   */
  async appendIn(tx: Queryable, data: T): Promise<FlowAppendResult> {
    const [e] = await this.appendAllIn(tx, [data])
    return e as FlowAppendResult
  }

  /**
   * {@link Flow.appendIn} for several events at once (one statement, at
   * most 1000): consecutive offsets, in the order given.
   *
   * @throws as {@link Flow.appendIn}; RangeError for more than 1000 events
   * @example
   * ```ts
   * await db.transaction(async (tx) => {
   *   const [a, b] = await orders.appendAllIn(tx, [{ id: 'o1' }, { id: 'o2' }]) // b.offset === a.offset + 1
   * })
   * ```
   */
  async appendAllIn(tx: Queryable, data: readonly T[]): Promise<FlowAppendResult[]> {
    const store = this.store
    if (!(store instanceof PgFlowStore)) {
      throw new ConfigError('FLOW_APPEND_IN_NEEDS_DB', `Flow "${this.name}" lives on the streams server, which cannot join a database transaction; build it with .db(db) on the database of the transaction to append inside one`)
    }
    if (data.length > MAX_IN_TX) throw new RangeError(`Flow "${this.name}": at most ${MAX_IN_TX} events per appendAllIn`)
    if (data.length === 0) return []
    const traceparent = tracingEnabled() ? currentTraceparent() : null
    const events = await Promise.all(data.map(async (d) => ({ id: randomUUID(), data: await this.#validate(d), traceparent })))
    const stored = await store.appendIn(tx, events)
    // Counted when the statement succeeds, as append() does; a later rollback is not subtracted.
    this.#appended.inc(stored.length)
    return stored.map((e) => ({ id: e.id, offset: e.offset }))
  }

  /**
   * @internal For Things' one-statement creates: runs changes of the
   * caller's table and appends one event per changed row (data computed in
   * SQL from the row) in one statement on the flow's database. Answers the
   * changed rows (none when the change matched nothing: no event).
   */
  async appendAfter(gate: Gate): Promise<Record<string, unknown>[]> {
    const store = this.store
    if (!(store instanceof PgFlowStore)) throw new ConfigError('FLOW_APPEND_IN_NEEDS_DB', `Flow "${this.name}" lives on the streams server, which cannot join a database statement`)
    const rows = await store.appendAfter(tracingEnabled() ? currentTraceparent() : null, gate)
    this.#appended.inc(rows.length)
    return rows
  }

  async #validate(data: unknown): Promise<unknown> {
    const subject = `event for flow "${this.name}"`
    const value = this.#c.schema ? await validate(this.#c.schema, data, subject) : data
    encodeValue(value, { subject })
    return value
  }

  /**
   * Reads stored events in offset order: those after `offset` (default 0,
   * the start), or the last `tail` events; at most `limit` (default 1000).
   *
   * @example
   * ```ts
   * const page = await orders.read({ offset: lastSeen, limit: 100 })
   * const latest = await orders.read({ tail: 10 })
   * ```
   */
  async read(o: FlowReadOptions = {}): Promise<FlowEvent<T>[]> {
    checkCount('offset', o.offset, Number.MAX_SAFE_INTEGER)
    checkCount('tail', o.tail, MAX_LIMIT)
    checkCount('limit', o.limit, MAX_LIMIT)
    const limit = o.limit ?? DEFAULT_LIMIT
    if (o.tail !== undefined) return (await this.store.tail(Math.min(o.tail, limit))) as FlowEvent<T>[]
    return (await this.store.read(o.offset ?? 0, limit)) as FlowEvent<T>[]
  }

  /**
   * The highest offset handed out so far (0 for an empty flow).
   *
   * @example
   * ```ts
   * const from = await orders.head()
   * ```
   */
  head(): Promise<number> {
    return this.store.head()
  }

  /**
   * Calls `fn` for every event, in offset order, from every instance's
   * appends: after `offset` when given, else from the flow's head when the
   * subscription starts. `fn` may be async: the next event is read only
   * after it resolves, so a slow handler slows its own subscription and
   * nothing piles up in memory. A handler error is logged and the
   * subscription goes on with the next event.
   *
   * @example
   * ```ts
   * const stop = orders.subscribe(async (e) => { await index(e.data) }, { offset: saved })
   * await stop.ready
   * // …
   * await stop()
   * ```
   */
  subscribe(fn: (event: FlowEvent<T>) => unknown, o: FlowSubscribeOptions = {}): Unsubscribe {
    // Checked as read() and stream() do, on every store: a bad offset never silently picks a position.
    checkCount('offset', o.offset, Number.MAX_SAFE_INTEGER)
    const ac = new AbortController()
    let markReady!: () => void
    let failReady!: (e: unknown) => void
    const ready = new Promise<void>((res, rej) => {
      markReady = res
      failReady = rej
    })
    // Awaiting `ready` is optional; a start failure is also logged below.
    ready.catch(() => undefined)
    let stopLag: (() => void) | undefined
    const run = async () => {
      let start = o.offset
      for (let backoff = 100; !ac.signal.aborted; backoff = Math.min(backoff * 2, 5000)) {
        try {
          await this.store.listen()
          start ??= await this.store.head()
          break
        } catch (e) {
          if (!isRetryable(e)) throw e
          this.#logger.warn({ err: e, flow: this.name }, 'flow subscription cannot start yet; retrying')
          await pause(backoff, ac.signal)
        }
      }
      markReady()
      if (start === undefined || ac.signal.aborted) return
      let handled = start
      // Read on scrape only: the head costs a query, worth it when someone asks.
      stopLag = engineMetrics.flowSubscriberLag.source([this.name], async () => Math.max(0, (await this.store.head()) - handled))
      for await (const e of pullEvents(this.store, start, { live: true, signal: ac.signal, logger: this.#logger })) {
        await this.#deliver(e as FlowEvent<T>, fn)
        handled = e.offset
      }
    }
    const done = run()
      .catch((e: unknown) => {
        failReady(e)
        this.#logger.error({ err: e, flow: this.name }, 'flow subscription stopped')
      })
      .finally(() => stopLag?.())
    const unsub: Unsubscribe = Object.assign(
      async () => {
        ac.abort()
        this.#subs.delete(unsub)
        await done
      },
      { ready },
    )
    this.#subs.add(unsub)
    return unsub
  }

  /**
   * Hands one event to a subscriber in a span that continues the trace of
   * its append; a handler error is recorded there and logged (with the
   * trace's ids), and the subscription goes on.
   */
  async #deliver(e: FlowEvent<T>, fn: (event: FlowEvent<T>) => unknown): Promise<void> {
    const run = async (span?: OtelSpan) => {
      try {
        await fn(e)
      } catch (err) {
        failSpan(span, err)
        this.#logger.error({ err, flow: this.name, offset: e.offset }, 'flow subscriber failed on an event')
      }
    }
    if (!tracingEnabled()) return run()
    const attributes = { 'messaging.system': 'onepipe', 'messaging.destination.name': this.name, 'messaging.operation.type': 'process', 'messaging.operation.name': 'deliver', 'messaging.message.id': e.id, 'onepipe.flow.offset': e.offset }
    await withSpan(`deliver ${this.name}`, { kind: 'consumer', parent: traceContext(e.traceparent), attributes }, run)
  }

  /**
   * Iterates events in offset order from `offset` (default 0). With
   * `live: true` it keeps waiting for new events after catching up; break
   * out of the loop (or abort `signal`) to stop. Pull-based: events are read
   * from the store as the loop asks for them.
   *
   * @example
   * ```ts
   * for await (const e of orders.stream({ live: true, offset: 120 })) {
   *   if (e.data.total > 100) break
   * }
   * ```
   */
  stream(o: FlowStreamOptions = {}): AsyncIterable<FlowEvent<T>> {
    checkCount('offset', o.offset, Number.MAX_SAFE_INTEGER)
    return pullEvents(this.store, o.offset ?? 0, { live: o.live ?? false, logger: this.#logger, ...(o.signal ? { signal: o.signal } : {}) }) as AsyncIterable<FlowEvent<T>>
  }

  /**
   * Deletes events past the retention limits now (the background sweep does
   * this under `serve()`); returns how many were deleted.
   *
   * @example
   * ```ts
   * const deleted = await orders.sweep()
   * ```
   */
  sweep(): Promise<number> {
    if (this.#c.maxAgeMs === undefined && this.#c.maxEvents === undefined) return Promise.resolve(0)
    return this.store.sweep(this.#c.maxAgeMs, this.#c.maxEvents)
  }

  /** Starts the retention sweep and live listening (called by `serve()`). */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#logger = rt.logger.child({ flow: this.name })
    if (this.#c.maxAgeMs === undefined && this.#c.maxEvents === undefined) return
    const ac = (this.#sweeper = new AbortController())
    this.#sweeping = (async () => {
      while (!ac.signal.aborted) {
        try {
          const n = await this.sweep()
          if (n > 0) this.#logger.debug({ deleted: n }, 'flow retention sweep')
        } catch (err) {
          this.#logger.warn({ err }, 'flow retention sweep failed; will retry')
        }
        await pause(this.#c.sweepEveryMs, ac.signal)
      }
    })()
  }

  /** Stops the sweep, every subscription and the listener (called by `serve()`). */
  async detach(): Promise<void> {
    this.#sweeper?.abort()
    await this.#sweeping
    this.#sweeper = undefined
    this.#sweeping = undefined
    await this.close()
  }

  /**
   * Stops every subscription of this flow object and its listener.
   *
   * @example
   * ```ts
   * await orders.close()
   * ```
   */
  async close(): Promise<void> {
    await Promise.all([...this.#subs].map((u) => u()))
    await this.#store?.close()
  }

  /** Mounts `/__onepipe/flows/{name}/events` and `/stream` (called by `serve()`). */
  routes(app: unknown, rt?: RuntimeContext): void {
    mountFlowRoutes(app as Hono, this, rt?.logger ?? stderrLogger, rt?.signal)
  }
}

/**
 * Fluent configuration for a {@link Flow}.
 *
 * @example
 * ```ts
 * Flow.create('audit').retention({ maxAge: '7d', maxEvents: 1_000_000 }).db(db).build()
 * ```
 */
export class FlowBuilder<T> {
  #c: FlowConfig

  constructor(name: string) {
    if (!NAME.test(name)) throw new ConfigError('INVALID_FLOW_NAME', `Flow name "${name}" is invalid: use letters, digits, '_', '-' and '.', starting with a letter or digit (at most 128)`)
    this.#c = { name, schema: undefined, db: undefined, streams: undefined, maxAgeMs: undefined, maxEvents: undefined, sweepEveryMs: 60_000 }
  }

  /** Validates every event before it is stored. */
  schema<S extends StandardSchemaV1>(s: S): FlowBuilder<StandardSchemaV1.InferOutput<S>> {
    this.#c.schema = s
    return this
  }

  /** Deletes events older than `maxAge` or beyond the newest `maxEvents`. */
  retention(o: FlowRetentionOptions): this {
    if (o.maxEvents !== undefined && (!Number.isInteger(o.maxEvents) || o.maxEvents < 1)) throw new ConfigError('INVALID_RETENTION', `retention.maxEvents must be a positive integer, got ${o.maxEvents}`)
    this.#c.maxAgeMs = o.maxAge === undefined ? undefined : parseDuration(o.maxAge)
    this.#c.maxEvents = o.maxEvents
    if (o.sweepEvery !== undefined) this.#c.sweepEveryMs = Math.max(10, parseDuration(o.sweepEvery))
    return this
  }

  /** Stores the events in PostgreSQL (or PGlite) instead of the streams server. */
  db(db: Database): this {
    this.#c.db = assertDatabase(db, `Flow "${this.#c.name}"`)
    this.#c.streams = undefined
    return this
  }

  /**
   * Stores the events in the streams server through this client (the
   * default without `.db()` is a client for `ONEPIPE_STREAMS_URL`).
   */
  streams(client: StreamsClient): this {
    this.#c.streams = client
    this.#c.db = undefined
    return this
  }

  /** Builds the flow and records it in the manifest. */
  build(): Flow<T> {
    const c = { ...this.#c }
    if (!c.db && (c.maxAgeMs !== undefined || c.maxEvents !== undefined)) {
      throw new ConfigError('FLOW_RETENTION_NEEDS_DB', `Flow "${c.name}": retention by age or count needs .db(db); in the streams server a stream expires as a whole`)
    }
    registerPrimitive({
      primitive: 'flow',
      name: c.name,
      infrastructure: c.db ? ['postgresql'] : ['streams'],
      config: { storage: c.db ? 'postgres' : 'streams', schema: c.schema !== undefined, retention: { maxAgeMs: c.maxAgeMs ?? null, maxEvents: c.maxEvents ?? null } },
    })
    return new Flow<T>(c)
  }
}
