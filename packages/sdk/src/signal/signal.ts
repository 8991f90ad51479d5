import {
  assertDatabase,
  encodeValue,
  ConfigError,
  ConflictError,
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
import { cacheStore, PgSignalStore, type SignalChange, type SignalStore, type VersionedValue } from './stores.js'

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
/** Attempts of one `update` before it gives up with a ConflictError (each loses only to a write that succeeded). */
const MAX_ATTEMPTS = 1000

interface SignalConfig {
  name: string
  schema: StandardSchemaV1 | undefined
  initial: unknown
  cache: CacheLike | undefined
  db: Database | undefined
}

type Listener = (value: unknown, version: number) => void

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Reactive shared state: one value per name, in Redis (`.cache()`) or
 * PostgreSQL (`.db()`). Every write is a versioned compare-and-swap, so
 * concurrent `update`s from any number of instances never lose a write, and
 * every instance's subscribers hear each change.
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

  /** @internal Use {@link Signal.create}. */
  constructor(c: SignalConfig) {
    this.#c = c
    this.name = c.name
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

  async #check(value: unknown): Promise<T> {
    const subject = `value of signal "${this.name}"`
    const v = this.#c.schema ? await validate(this.#c.schema, value, subject) : value
    encodeValue(v, { subject })
    return v as T
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
    const v = await this.#check(value)
    return { value: v, version: await this.#s.write(v) }
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

  /** @internal Compare-and-swap loop behind update and patch. */
  async change(fn: (value: T) => unknown): Promise<VersionedValue<T>> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const cur = await this.read()
      const next = await this.#check(await fn(cur.value))
      const version = await this.#s.cas(cur.version, next)
      if (version !== undefined) return { value: next, version }
      // Lost to a write that succeeded: retry at once, then with a little jitter so contenders spread out.
      if (attempt > 0) await sleep(Math.random() * Math.min(2 ** attempt, 20))
    }
    throw new ConflictError('SIGNAL_CONTENDED', `Signal "${this.name}" changed under every one of ${MAX_ATTEMPTS} update attempts; reduce write contention or retry later`)
  }

  /**
   * Applies `fn` to the current value and writes the result only if no one
   * else wrote in between (retrying otherwise), so concurrent updates on
   * many instances all count. `fn` may run more than once: keep it pure.
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
   * Merges `partial` into an object value (a compare-and-swap like `update`).
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
