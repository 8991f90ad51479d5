import {
  assertDatabase,
  encodeValue,
  engineMetrics,
  ConfigError,
  isRetryable,
  registerPrimitive,
  stderrLogger,
  TimeoutError,
  validate,
  ValidationError,
  type CacheLike,
  type Component,
  type Database,
  type Logger,
  type RuntimeContext,
  type StandardSchemaV1,
} from '@onepipe/core'
import type { Hono } from 'hono'
import type { Unsubscribe } from '../flow/types.js'
import { mountSignalRoutes } from './http.js'
import { UpdateQueue } from './queue.js'
import { cacheStore, PgSignalStore, type SignalChange, type SignalStore, type VersionedValue } from './stores.js'

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

interface SignalConfig {
  name: string
  schema: StandardSchemaV1 | undefined
  initial: unknown
  cache: CacheLike | undefined
  db: Database | undefined
}

type Listener = (value: unknown, version: number) => void

/**
 * Reactive shared state: one value per name, in Redis (`.cache()`) or
 * PostgreSQL (`.db()`). Every update is applied exactly once, to the value
 * it saw, however many instances update at once, and every instance's
 * subscribers hear the changes. Each update takes one version.
 *
 * Under contention an instance does not retry each update on its own: it
 * queues them and writes all it has queued in one compare-and-swap, so a
 * busy signal costs one write per round per instance rather than a retry
 * per update. One write then carries many versions, and subscribers hear
 * its last one.
 *
 * @example
 * ```ts
 * const visitors = Signal.create('visitors').schema(z.number().int()).default(0).cache(redis).build()
 * await visitors.update((n) => n + 1)
 * const stop = visitors.subscribe((n) => console.log('now', n))
 * await visitors.waitFor((n) => n >= 100, 60_000)
 * ```
 */
export class Signal<T = unknown> implements Component {
  readonly kind = 'signal'
  readonly name: string
  readonly #c: SignalConfig
  #store: SignalStore | undefined
  #logger: Logger = stderrLogger
  #listeners = new Set<Listener>()
  #unwatch: Promise<() => Promise<void>> | undefined
  #seen = 0
  readonly #queue: UpdateQueue

  /** @internal Use {@link Signal.create}. */
  constructor(c: SignalConfig) {
    this.#c = c
    this.name = c.name
    this.#queue = new UpdateQueue({ name: c.name, store: () => this.#s, initialText: () => JSON.stringify(this.#c.initial), check: (v) => this.#check(v) })
  }

  /**
   * Starts a signal builder.
   *
   * @example
   * ```ts
   * const mode = Signal.create('mode').default('normal').db(db).build()
   * ```
   */
  static create(name: string): SignalBuilder<unknown> {
    return new SignalBuilder(name)
  }

  get #s(): SignalStore {
    if (this.#store) return this.#store
    if (this.#c.db) return (this.#store = new PgSignalStore(this.#c.db, this.name))
    if (this.#c.cache) return (this.#store = cacheStore(this.#c.cache, this.name))
    throw new ConfigError('SIGNAL_NO_STORE', `Signal "${this.name}" has no store: give it .cache(redis) or .db(db), or pass it to serve({ signals }) to use the app's cache`)
  }

  #initial(): T {
    return structuredClone(this.#c.initial) as T
  }

  async #check(value: unknown): Promise<{ value: T; text: string }> {
    const subject = `value of signal "${this.name}"`
    const v = this.#c.schema ? await validate(this.#c.schema, value, subject) : value
    return { value: v as T, text: encodeValue(v, { subject }) }
  }

  /**
   * The value and the version that wrote it (0 while it still holds the default).
   *
   * @example
   * ```ts
   * const { value, version } = await visitors.read()
   * ```
   */
  async read(): Promise<VersionedValue<T>> {
    const r = await this.#s.read()
    return r ? (r as VersionedValue<T>) : { value: this.#initial(), version: 0 }
  }

  /**
   * The current value (the default until something was written).
   *
   * @example
   * ```ts
   * const n = await visitors.get()
   * ```
   */
  async get(): Promise<T> {
    return (await this.read()).value
  }

  /** @internal Writes unconditionally; answers the new value and version. */
  async write(value: unknown): Promise<VersionedValue<T>> {
    const { value: v, text } = await this.#check(value)
    const version = await this.#s.write(text)
    this.#queue.saw(version, text)
    engineMetrics.signalUpdates.with(this.name).inc()
    return { value: v, version }
  }

  /**
   * Replaces the value (validated by the schema).
   *
   * @example
   * ```ts
   * await mode.set('maintenance')
   * ```
   */
  async set(value: T): Promise<T> {
    return (await this.write(value)).value
  }

  /** @internal The read-modify-write behind update and patch: the value `fn` produced and the version it took. */
  change(fn: (value: T) => unknown): Promise<VersionedValue<T>> {
    return this.#queue.push(fn as (value: unknown) => unknown) as Promise<VersionedValue<T>>
  }

  /**
   * Applies `fn` to the current value and writes its result, exactly once,
   * and only if no one else wrote in between; resolves with that result.
   * Concurrent updates on any number of instances all count, in some order:
   * each `fn` sees the value left by the update before it.
   *
   * `fn` must be pure: a function of the value it is given, without side
   * effects, and quick. It may run more than once (again on a fresh value
   * when the write it was part of lost to another instance's), but only one
   * run's result is ever applied. This instance's other updates of the
   * signal wait while it runs, so an async `fn` that takes over 10 s fails
   * with a TimeoutError. When `fn` throws or returns an invalid value, that
   * update alone fails (with its error or a ValidationError) and the value
   * is left as it was for the next one.
   *
   * @example
   * ```ts
   * const n = await visitors.update((n) => n + 1)
   * ```
   */
  async update(fn: (value: T) => T | Promise<T>): Promise<T> {
    return (await this.change(fn)).value
  }

  /**
   * Merges `partial` into an object value (an update like `update`, so it
   * never loses a concurrent change).
   *
   * @example
   * ```ts
   * await settings.patch({ theme: 'dark' })
   * ```
   */
  async patch(partial: Partial<T>): Promise<T> {
    return (await this.change((v) => mergeObject(this.name, v, partial))).value
  }

  /**
   * Writes the default value back.
   *
   * @example
   * ```ts
   * await visitors.reset()
   * ```
   */
  async reset(): Promise<T> {
    return this.set(this.#initial())
  }

  /**
   * Calls `fn` with each new value written by any instance, in version
   * order (a listener that falls behind gets the latest value, never an
   * older one after a newer).
   *
   * @example
   * ```ts
   * const stop = visitors.subscribe((n, version) => render(n))
   * await stop.ready
   * await stop()
   * ```
   */
  subscribe(fn: (value: T, version: number) => void): Unsubscribe {
    let last = 0
    const listener: Listener = (value, version) => {
      if (version <= last) return
      last = version
      try {
        fn(value as T, version)
      } catch (err) {
        this.#logger.error({ err, signal: this.name }, 'signal subscriber failed')
      }
    }
    this.#listeners.add(listener)
    const ready = this.#watch()
    ready.catch((err: unknown) => this.#logger.error({ err, signal: this.name }, 'signal subscription failed to start'))
    return Object.assign(
      async () => {
        this.#listeners.delete(listener)
        if (this.#listeners.size === 0) await this.#stopWatching()
      },
      { ready },
    )
  }

  #watch(): Promise<void> {
    this.#unwatch ??= this.#s.watch((c) => void this.#onChange(c))
    return this.#unwatch.then(() => undefined)
  }

  async #stopWatching(): Promise<void> {
    const u = this.#unwatch
    this.#unwatch = undefined
    if (u) await (await u)()
  }

  async #onChange(c: SignalChange): Promise<void> {
    if (c.version <= this.#seen) return
    let value = c.value
    let version = c.version
    if (!c.hasValue) {
      try {
        const r = await this.#s.read()
        if (!r) return
        ;({ value, version } = r)
      } catch (err) {
        if (!isRetryable(err)) throw err
        this.#logger.warn({ err, signal: this.name }, 'signal change seen but its value could not be read')
        return
      }
    }
    if (version <= this.#seen) return
    this.#seen = version
    for (const l of this.#listeners) l(value, version)
  }

  /**
   * Resolves with the first value for which `pred` holds (the current one or
   * a later change); rejects with a TimeoutError after `timeoutMs`.
   *
   * @example
   * ```ts
   * await job.waitFor((s) => s.status === 'done', 30_000)
   * ```
   */
  async waitFor(pred: (value: T) => boolean, timeoutMs: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    let stop: Unsubscribe | undefined
    try {
      return await new Promise<T>((resolve, reject) => {
        timer = setTimeout(() => reject(new TimeoutError('SIGNAL_WAIT_TIMEOUT', `Signal "${this.name}" did not reach the awaited value within ${timeoutMs} ms`)), timeoutMs)
        const check = (v: T) => {
          try {
            if (pred(v)) resolve(v)
          } catch (e) {
            reject(e instanceof Error ? e : new Error(String(e)))
          }
        }
        stop = this.subscribe(check)
        void stop.ready.then(() => this.get()).then(check, reject)
      })
    } finally {
      clearTimeout(timer)
      await stop?.()
    }
  }

  /** Uses the app's cache when the signal was built without a store (called by `serve()`). */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#logger = rt.logger.child({ signal: this.name })
    if (!this.#c.db && !this.#c.cache) this.#c.cache = rt.cache
  }

  /** Stops listening for changes (called by `serve()`). */
  async detach(): Promise<void> {
    this.#listeners.clear()
    await this.#stopWatching()
  }

  /**
   * Stops every subscription of this signal object.
   *
   * @example
   * ```ts
   * await visitors.close()
   * ```
   */
  close(): Promise<void> {
    return this.detach()
  }

  /** Mounts `GET|PUT|PATCH /__onepipe/signals/{name}` and `/stream` (called by `serve()`). */
  routes(app: unknown, rt?: RuntimeContext): void {
    mountSignalRoutes(app as Hono, this, rt?.logger ?? stderrLogger, rt?.signal)
  }
}

/** @internal Shallow merge of a patch into an object value; a ValidationError for anything else. */
export function mergeObject(name: string, v: unknown, partial: unknown): unknown {
  const isObj = (x: unknown) => typeof x === 'object' && x !== null && !Array.isArray(x)
  if (!isObj(v)) throw new ValidationError(`patch of signal "${name}"`, [{ path: '', message: 'patch needs a signal whose value is an object; use set() or update()' }])
  if (!isObj(partial)) throw new ValidationError(`patch of signal "${name}"`, [{ path: '', message: 'a patch must be an object' }])
  return { ...(v as object), ...(partial as object) }
}

/**
 * Fluent configuration for a {@link Signal}.
 *
 * @example
 * ```ts
 * Signal.create('settings').schema(Settings).default({ theme: 'light' }).cache(redis).build()
 * ```
 */
export class SignalBuilder<T> {
  #c: SignalConfig
  #hasDefault = false

  constructor(name: string) {
    if (!NAME.test(name)) throw new ConfigError('INVALID_SIGNAL_NAME', `Signal name "${name}" is invalid: use letters, digits, '_', '-' and '.', starting with a letter or digit (at most 128)`)
    this.#c = { name, schema: undefined, initial: undefined, cache: undefined, db: undefined }
  }

  /** Validates every written value. */
  schema<S extends StandardSchemaV1>(s: S): SignalBuilder<StandardSchemaV1.InferOutput<S>> {
    this.#c.schema = s
    return this
  }

  /** The value before anything was written, and after `reset()`. */
  default<V extends T>(v: V): SignalBuilder<unknown extends T ? V : T> {
    if (v === undefined) throw new ConfigError('INVALID_SIGNAL_DEFAULT', `Signal "${this.#c.name}": the default must be a JSON value, not undefined`)
    this.#c.initial = structuredClone(v)
    this.#hasDefault = true
    return this as unknown as SignalBuilder<unknown extends T ? V : T>
  }

  /** Keeps the value in Redis (or the in-process cache). */
  cache(c: CacheLike): this {
    this.#c.cache = c
    this.#c.db = undefined
    return this
  }

  /** Keeps the value in PostgreSQL (or PGlite). */
  db(db: Database): this {
    this.#c.db = assertDatabase(db, `Signal "${this.#c.name}"`)
    this.#c.cache = undefined
    return this
  }

  /** Builds the signal and records it in the manifest. */
  build(): Signal<T> {
    if (!this.#hasDefault) throw new ConfigError('SIGNAL_NO_DEFAULT', `Signal "${this.#c.name}" needs a default value: add .default(value)`)
    const c = { ...this.#c }
    const cacheKind = (c.cache as { kind?: unknown } | undefined)?.kind
    const kind = c.db ? 'postgres' : typeof cacheKind === 'string' ? cacheKind : 'app-cache'
    registerPrimitive({ primitive: 'signal', name: c.name, infrastructure: kind === 'postgres' ? ['postgresql'] : kind === 'redis' ? ['redis'] : ['none'], config: { storage: kind, schema: c.schema !== undefined } })
    return new Signal<T>(c)
  }
}
