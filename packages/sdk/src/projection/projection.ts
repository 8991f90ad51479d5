import {
  assertDatabase,
  ConfigError,
  engineMetrics,
  registerPrimitive,
  stderrLogger,
  TimeoutError,
  ValidationError,
  type Component,
  type Database,
  type Logger,
  type RuntimeContext,
} from '@onepipe/core'
import type { Hono } from 'hono'
import type { Flow } from '../flow/flow.js'
import { mountProjectionRoutes } from './http.js'
import { pause, pollMs, waitForAppend } from '../flow/pull.js'
import type { FlowEvent, Unsubscribe } from '../flow/types.js'
import { CHANNEL, ensureStateRow, lockState, lockStateWait, resetState, selectAllEntities, selectChangedEntities, selectEntities, selectEntity, selectState, upsertEntities, writeState } from './sql.js'

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

/** Folds one event into the state: return the new state (mutating and returning the old one is fine). */
export type ProjectionReducer<S, E> = (state: S, data: E, event: FlowEvent<E>) => S | Promise<S>

interface ProjectionConfig<S, E> {
  name: string
  flow: Flow<E> | undefined
  initial: S
  reduce: ProjectionReducer<S, E> | undefined
  keyBy: ((data: E, event: FlowEvent<E>) => string) | undefined
  every: number
  db: Database | undefined
}

/** Where a projection stands. */
export interface ProjectionStatus {
  /** The last flow offset folded into the state. */
  lastOffset: number
  eventCount: number
  /** Bumped by every committed batch (and by rebuild). */
  version: number
}

type Change<S> = { key: string | undefined; state: S; version: number }

/** What one runner step did. */
type Step = { applied: number } | 'busy' | 'stale'

/**
 * A materialized view of a flow: the fold of every event, whole or per
 * entity key, kept in PostgreSQL. Each batch of events is folded and
 * written together with the offset it reaches in one transaction under
 * the projection's row lock, so every event is applied exactly once across
 * restarts, crashes and any number of instances running it.
 *
 * @example
 * ```ts
 * const revenue = Projection.create('revenue')
 *   .from(orders)
 *   .initial({ total: 0 })
 *   .reduce((s, order) => ({ total: s.total + order.total }))
 *   .db(db)
 *   .build()
 * await revenue.start()
 * console.log(await revenue.get())
 * ```
 */
export class Projection<S = unknown, E = unknown> implements Component {
  readonly kind = 'projection'
  readonly name: string
  readonly #c: ProjectionConfig<S, E>
  #logger: Logger = stderrLogger
  #runner: { ac: AbortController; done: Promise<void>; stopLag: () => void } | undefined
  #kick: (() => void) | undefined
  #prepared: Promise<void> | undefined
  #listeners = new Set<(c: Change<S>) => void>()
  #unlisten: Promise<() => Promise<void>> | undefined
  #seenVersion = 0
  #dispatching: Promise<void> | undefined
  #dirty = false

  /** @internal Use {@link Projection.create}. */
  constructor(c: ProjectionConfig<S, E>) {
    this.#c = c
    this.name = c.name
  }

  /**
   * Starts a projection builder.
   *
   * @example
   * ```ts
   * const perCustomer = Projection.create('per-customer').from(orders).initial(0).reduce((n) => n + 1).keyBy((o) => o.customer).build()
   * ```
   */
  static create(name: string): ProjectionBuilder<unknown, unknown> {
    return new ProjectionBuilder(name)
  }

  get #db(): Database {
    if (this.#c.db) return this.#c.db
    throw new ConfigError('PROJECTION_NO_DB', `Projection "${this.name}" has no database: give it .db(db), or pass it to serve({ projections }) to use the app's database`)
  }

  get #flow(): Flow<E> {
    return this.#c.flow as Flow<E>
  }

  #initial(): S {
    return structuredClone(this.#c.initial)
  }

  #prepare(): Promise<void> {
    this.#prepared ??= ensureStateRow(this.#db, this.name, this.#c.keyBy ? null : this.#c.initial).catch((e: unknown) => {
      this.#prepared = undefined
      throw e
    })
    return this.#prepared
  }

  /**
   * Applies the next batch (up to `snapshot.every` events) if this instance
   * can take the projection's row lock and no other instance moved on in
   * between; the events are read before the transaction so a slow flow
   * never holds the lock.
   */
  async #step(): Promise<Step> {
    await this.#prepare()
    const before = await selectState(this.#db, this.name)
    if (!before) return 'stale'
    const events = await this.#flow.read({ offset: Number(before.last_offset), limit: this.#c.every })
    if (events.length === 0) return { applied: 0 }
    return this.#db.transaction(async (tx): Promise<Step> => {
      const row = await lockState(tx, this.name)
      if (!row) return 'busy'
      if (row.last_offset !== before.last_offset) return 'stale'
      const version = row.version + 1
      const last = String((events.at(-1) as FlowEvent<E>).offset)
      const channel = this.#db.channel(CHANNEL)
      if (this.#c.keyBy) {
        const keyOf = this.#c.keyBy
        const keys = events.map((e) => this.#checkKey(keyOf(e.data, e), e))
        const states = await selectEntities(tx, this.name, [...new Set(keys)])
        for (const [i, e] of events.entries()) {
          const k = keys[i] as string
          states.set(k, await this.#apply(states.has(k) ? states.get(k) : this.#initial(), e))
        }
        await upsertEntities(tx, this.name, states, version)
        await writeState(tx, this.name, channel, { state: null, lastOffset: last, applied: events.length, version })
      } else {
        let state = row.state as S
        for (const e of events) state = await this.#apply(state, e)
        await writeState(tx, this.name, channel, { state, lastOffset: last, applied: events.length, version })
      }
      return { applied: events.length }
    })
  }

  #checkKey(k: unknown, e: FlowEvent<E>): string {
    if (typeof k === 'string' && k.length > 0) return k
    throw new ValidationError(`key of projection "${this.name}"`, [{ path: '', message: `keyBy returned ${JSON.stringify(k)} for the event at offset ${e.offset}; it must return a non-empty string` }])
  }

  async #apply(state: unknown, e: FlowEvent<E>): Promise<S> {
    const next = await (this.#c.reduce as ProjectionReducer<S, E>)(state as S, e.data, e)
    if (next === undefined) throw new ValidationError(`state of projection "${this.name}"`, [{ path: '', message: `reduce returned undefined for the event at offset ${e.offset}; return the new state` }])
    return next
  }

  /**
   * Starts following the flow in this process (`serve()` does this):
   * folds what was appended so far, then every new append from any instance.
   *
   * @example
   * ```ts
   * await revenue.start()
   * ```
   */
  async start(): Promise<void> {
    if (this.#runner) return
    // Read here so that a bad ONEPIPE_FLOW_POLL fails the start, not the runner later.
    const every = pollMs()
    await this.#prepare()
    await this.#flow.store.listen()
    const ac = new AbortController()
    // Read on scrape: the flow's head against the offset the state reached (two queries, only when asked).
    const stopLag = engineMetrics.projectionLag.source([this.name], async () => Math.max(0, (await this.#flow.head()) - (await this.status()).lastOffset))
    this.#runner = { ac, done: this.#run(ac.signal, every), stopLag }
  }

  async #run(signal: AbortSignal, every: number): Promise<void> {
    let backoff = 100
    while (!signal.aborted) {
      const wake = this.#flow.store.nextWake()
      const kicked = new Promise<void>((r) => (this.#kick = r))
      let step: Step
      try {
        step = await this.#step()
        backoff = 100
      } catch (err) {
        this.#logger.error({ err, projection: this.name }, 'projection batch failed; retrying')
        await pause(backoff, signal)
        backoff = Math.min(backoff * 2, 10_000)
        continue
      }
      if (step === 'stale') continue
      if (step !== 'busy' && step.applied > 0) continue
      // Caught up, or another instance is applying: wait for the next append (or its commit's notice).
      await Promise.race([kicked, waitForAppend(this.#flow.store, signal, wake, step === 'busy' ? 100 : every)])
    }
  }

  /**
   * Stops following the flow in this process.
   *
   * @example
   * ```ts
   * await revenue.stop()
   * ```
   */
  async stop(): Promise<void> {
    const r = this.#runner
    this.#runner = undefined
    if (!r) return
    r.stopLag()
    r.ac.abort()
    this.#kick?.()
    await r.done
  }

  /**
   * Applies everything appended to the flow so far (by this or another
   * instance), then resolves: read-your-writes after an append.
   *
   * @example
   * ```ts
   * await orders.append(order)
   * await revenue.sync()
   * ```
   */
  async sync(timeoutMs = 30_000): Promise<void> {
    const head = await this.#flow.head()
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const s = await this.status()
      if (s.lastOffset >= head) return
      if (Date.now() > deadline) throw new TimeoutError('PROJECTION_SYNC_TIMEOUT', `Projection "${this.name}" reached offset ${s.lastOffset}, not ${head}, within ${timeoutMs} ms`)
      const step = await this.#step()
      if (step === 'busy' || (step !== 'stale' && step.applied === 0)) await pause(20)
    }
  }

  /**
   * Where the projection stands.
   *
   * @example
   * ```ts
   * const { lastOffset, eventCount } = await revenue.status()
   * ```
   */
  async status(): Promise<ProjectionStatus> {
    await this.#prepare()
    const r = await selectState(this.#db, this.name)
    return { lastOffset: Number(r?.last_offset ?? 0), eventCount: r?.event_count ?? 0, version: r?.version ?? 0 }
  }

  /**
   * The state (no key), or one entity's state (keyed projections;
   * undefined when no event had that key).
   *
   * @example
   * ```ts
   * const total = await revenue.get()
   * const alice = await perCustomer.get('alice')
   * ```
   */
  async get(key?: string): Promise<S | undefined> {
    await this.#prepare()
    if (this.#c.keyBy) {
      if (key === undefined) throw new ValidationError(`read of projection "${this.name}"`, [{ path: 'key', message: 'this projection is keyed: pass the entity key, or use values()' }])
      return (await selectEntity(this.#db, this.name, key))?.state as S | undefined
    }
    const r = await selectState(this.#db, this.name)
    return r ? (r.state as S) : this.#initial()
  }

  /**
   * The entity keys, sorted (empty for an unkeyed projection).
   *
   * @example
   * ```ts
   * for (const k of await perCustomer.keys()) console.log(k)
   * ```
   */
  async keys(): Promise<string[]> {
    return (await this.entries()).map(([k]) => k)
  }

  /**
   * The entity states in key order (the single state for an unkeyed projection).
   *
   * @example
   * ```ts
   * const all = await perCustomer.values()
   * ```
   */
  async values(): Promise<S[]> {
    if (!this.#c.keyBy) return [(await this.get()) as S]
    return (await this.entries()).map(([, v]) => v)
  }

  /**
   * `[key, state]` pairs in key order (empty for an unkeyed projection).
   *
   * @example
   * ```ts
   * const map = new Map(await perCustomer.entries())
   * ```
   */
  async entries(): Promise<[string, S][]> {
    if (!this.#c.keyBy) return []
    await this.#prepare()
    return (await selectAllEntities(this.#db, this.name)).map((r) => [r.entity_key, r.state as S])
  }

  /**
   * Throws the state away and folds the whole flow again (what retention
   * kept of it). Runs under the row lock, so no instance applies a batch
   * across the reset.
   *
   * @example
   * ```ts
   * await revenue.rebuild()
   * await revenue.sync()
   * ```
   */
  async rebuild(): Promise<void> {
    await this.#prepare()
    await this.#db.transaction(async (tx) => {
      const row = await lockStateWait(tx, this.name)
      await resetState(tx, this.name, this.#db.channel(CHANNEL), this.#c.keyBy ? null : this.#c.initial, (row?.version ?? 0) + 1)
    })
    this.#kick?.()
  }

  /**
   * Calls `fn` after each committed batch with the new state (unkeyed), or
   * once per changed entity with its key and state (keyed), whichever
   * instance applied it. Changes are coalesced per batch: a listener sees
   * the state after the batch, not every intermediate one.
   *
   * @example
   * ```ts
   * const stop = revenue.subscribe((state) => console.log(state.total))
   * const stop2 = perCustomer.subscribe((state, key) => console.log(key, state))
   * ```
   */
  subscribe(fn: (state: S, key: string | undefined) => void): Unsubscribe {
    return this.#listen((c) => fn(c.state, c.key))
  }

  /**
   * Calls `fn` with one entity's new state each time a batch changes it.
   *
   * @example
   * ```ts
   * const stop = perCustomer.subscribeKey('alice', (n) => console.log('alice', n))
   * ```
   */
  subscribeKey(key: string, fn: (state: S) => void): Unsubscribe {
    return this.#listen((c) => {
      if (c.key === key) fn(c.state)
    })
  }

  #listen(fn: (c: Change<S>) => void): Unsubscribe {
    const safe = (c: Change<S>) => {
      try {
        fn(c)
      } catch (err) {
        this.#logger.error({ err, projection: this.name }, 'projection subscriber failed')
      }
    }
    this.#listeners.add(safe)
    const ready = (async () => {
      if (!this.#unlisten) {
        this.#seenVersion = (await this.status()).version
        // Commits made while the listening connection was down are not
        // announced again: once it is back, read the state as if announced
        // (nothing is delivered when the version did not move).
        this.#unlisten ??= this.#db.listen(
          CHANNEL,
          (name) => {
            if (name === this.name) this.#onCommit()
          },
          { onReconnect: () => this.#onCommit() },
        )
      }
      await this.#unlisten
    })()
    ready.catch((err: unknown) => this.#logger.error({ err, projection: this.name }, 'projection subscription failed to start'))
    return Object.assign(
      async () => {
        this.#listeners.delete(safe)
        if (this.#listeners.size > 0 || !this.#unlisten) return
        const u = this.#unlisten
        this.#unlisten = undefined
        await (await u)()
        await this.#dispatching
      },
      { ready },
    )
  }

  /** One dispatch at a time; notices during it coalesce into one more. */
  #onCommit(): void {
    if (this.#dispatching) {
      this.#dirty = true
      return
    }
    this.#dispatching = (async () => {
      do {
        this.#dirty = false
        try {
          await this.#dispatch()
        } catch (err) {
          this.#logger.warn({ err, projection: this.name }, 'projection change seen but not read')
        }
      } while (this.#dirty && this.#listeners.size > 0)
    })().finally(() => (this.#dispatching = undefined))
  }

  async #dispatch(): Promise<void> {
    const s = await selectState(this.#db, this.name)
    if (!s || s.version <= this.#seenVersion) return
    const since = this.#seenVersion
    this.#seenVersion = s.version
    const changes: Change<S>[] = this.#c.keyBy
      ? (await selectChangedEntities(this.#db, this.name, since)).map((r) => ({ key: r.entity_key, state: r.state as S, version: r.version }))
      : [{ key: undefined, state: s.state as S, version: s.version }]
    for (const c of changes) for (const l of this.#listeners) l(c)
  }

  /** Whether the state is kept per entity key (`.keyBy()`). */
  get keyed(): boolean {
    return this.#c.keyBy !== undefined
  }

  /** The name of the flow it folds. */
  get flowName(): string | undefined {
    return this.#c.flow?.name
  }

  /** The flow's head offset: `head() - status().lastOffset` is how far the state lags. */
  async head(): Promise<number> {
    return (await this.#c.flow?.head()) ?? 0
  }

  /** Mounts the operators' routes under `/__onepipe/projections` (called by `serve()`, behind its guard). */
  routes(app: unknown, rt?: RuntimeContext): void {
    if (rt) this.#c.db ??= rt.db
    mountProjectionRoutes(app as Hono, this, rt?.logger ?? stderrLogger)
  }

  /** Runs the projection under `serve()`, on the app's database when none was given. */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#logger = rt.logger.child({ projection: this.name })
    this.#c.db ??= rt.db
    await this.start()
  }

  /** Stops the runner and every subscription (called by `serve()`). */
  async detach(): Promise<void> {
    await this.stop()
    await this.close()
  }

  /**
   * Stops every subscription of this projection object.
   *
   * @example
   * ```ts
   * await revenue.close()
   * ```
   */
  async close(): Promise<void> {
    this.#listeners.clear()
    const u = this.#unlisten
    this.#unlisten = undefined
    if (u) await (await u)()
    await this.#dispatching
  }
}

/**
 * Fluent configuration for a {@link Projection}.
 *
 * @example
 * ```ts
 * Projection.create('stock').from(moves).initial(0).reduce((n, m) => n + m.qty).keyBy((m) => m.sku).snapshot({ every: 200 }).db(db).build()
 * ```
 */
export class ProjectionBuilder<S, E> {
  #c: ProjectionConfig<S, E>
  #hasInitial = false

  constructor(name: string) {
    if (!NAME.test(name)) throw new ConfigError('INVALID_PROJECTION_NAME', `Projection name "${name}" is invalid: use letters, digits, '_', '-' and '.', starting with a letter or digit (at most 128)`)
    this.#c = { name, flow: undefined, initial: undefined as S, reduce: undefined, keyBy: undefined, every: 100, db: undefined }
  }

  /** The flow to fold. */
  from<E2>(flow: Flow<E2>): ProjectionBuilder<S, E2> {
    const b = this as unknown as ProjectionBuilder<S, E2>
    b.#c.flow = flow
    return b
  }

  /** The state before any event (per entity when keyed). */
  initial<S2>(s: S2): ProjectionBuilder<S2, E> {
    if (s === undefined) throw new ConfigError('INVALID_PROJECTION_INITIAL', `Projection "${this.#c.name}": the initial state must be a JSON value, not undefined`)
    const b = this as unknown as ProjectionBuilder<S2, E>
    b.#c.initial = structuredClone(s)
    b.#hasInitial = true
    return b
  }

  /** Folds one event into the state. */
  reduce(fn: ProjectionReducer<S, E>): this {
    this.#c.reduce = fn
    return this
  }

  /** Keeps one state per entity key instead of one state. */
  keyBy(fn: (data: E, event: FlowEvent<E>) => string): this {
    this.#c.keyBy = fn
    return this
  }

  /** Commits the state at least every `every` events (default 100): one transaction per batch. */
  snapshot(o: { every: number }): this {
    if (!Number.isInteger(o.every) || o.every < 1 || o.every > 10_000) throw new ConfigError('INVALID_SNAPSHOT', `snapshot.every must be an integer from 1 to 10,000, got ${o.every}`)
    this.#c.every = o.every
    return this
  }

  /** Keeps the state in this database (default: the app's under `serve()`). */
  db(db: Database): this {
    this.#c.db = assertDatabase(db, `Projection "${this.#c.name}"`)
    return this
  }

  /** Builds the projection and records it in the manifest. */
  build(): Projection<S, E> {
    const c = { ...this.#c }
    if (!c.flow) throw new ConfigError('PROJECTION_NO_FLOW', `Projection "${c.name}" needs a flow: add .from(flow)`)
    if (!this.#hasInitial) throw new ConfigError('PROJECTION_NO_INITIAL', `Projection "${c.name}" needs an initial state: add .initial(value)`)
    if (!c.reduce) throw new ConfigError('PROJECTION_NO_REDUCE', `Projection "${c.name}" needs a reducer: add .reduce((state, event) => newState)`)
    registerPrimitive({ primitive: 'projection', name: c.name, infrastructure: ['postgresql'], config: { flow: c.flow.name, keyed: c.keyBy !== undefined, snapshotEvery: c.every } })
    return new Projection<S, E>(c)
  }
}
