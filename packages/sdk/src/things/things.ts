import {
  assertDatabase,
  ConfigError,
  isStandardSchema,
  parseDuration,
  registerPrimitive,
  stderrLogger,
  ValidationError,
  type Component,
  type Database,
  type Duration,
  type RuntimeContext,
  type StandardSchemaV1,
} from '@onepipe/core'
import type { Hono } from 'hono'
import { Flow } from '../flow/flow.js'
import type { FlowAppendResult } from '../flow/types.js'
import { compressedJson, intParam, respondError } from '../http/index.js'
import { ChangeQueue } from './batch.js'
import { ThingCollection, type NounSpec, type ThingsHost } from './collection.js'
import { MAX_CONDITIONS, MAX_IN_VALUES, MAX_NESTING } from './filter.js'
import { MAX_LIMIT, MAX_ORDER_KEYS } from './order.js'
import { MAX_PATH_DEPTH, pathProblem } from './paths.js'
import { MAX_REGEX_LENGTH, MAX_REGEX_WEIGHT } from './regex.js'
import { ensureIndex, insertGate, NOUN, STORE_NAME } from './store.js'
import type { NounOptions, ThingEvent } from './types.js'

const VERB = /^[a-z][A-Za-z0-9]{0,63}$/
const CHANGE_VERBS = new Set(['created', 'updated', 'deleted', 'softDeleted', 'restored'])
const DEFAULT_REGEX_TIMEOUT_MS = 2000

/**
 * The bounds Things enforce on every query, each refused with a
 * ValidationError naming the field when passed.
 *
 * @example
 * ```ts
 * THINGS_LIMITS.inValues // 1000: the most values in one $in or $nin
 * ```
 */
export const THINGS_LIMITS = {
  /** The most values in one `$in` / `$nin`. */
  inValues: MAX_IN_VALUES,
  /** The most field conditions in one filter. */
  conditions: MAX_CONDITIONS,
  /** How deep `$and` / `$or` / `$not` nest. */
  nesting: MAX_NESTING,
  /** Segments of a dotted field path. */
  pathDepth: MAX_PATH_DEPTH,
  /** The largest page of `list()`. */
  limit: MAX_LIMIT,
  /** Sort keys of one `orderBy`. */
  orderKeys: MAX_ORDER_KEYS,
  /** Characters of a `$regex`. */
  regexLength: MAX_REGEX_LENGTH,
  /** Repetition weight of a `$regex` (nested bounds multiply). */
  regexWeight: MAX_REGEX_WEIGHT,
} as const

interface Declared extends NounSpec {
  indexes: string[][]
}

interface ThingsConfig {
  name: string
  db: Database | undefined
  nouns: Map<string, Declared>
  regexTimeoutMs: number
}

/** The fields of each declared noun, by noun name. */
type NounMap = Record<string, object>

/**
 * A store of typed entities, Things, by noun (`Customer`, `Order`), in one
 * PostgreSQL (or embedded) table, with MongoDB-style filters pushed down to
 * SQL and every change announced as a `Noun.verb` event in the flow
 * `things.<name>`, in the change's own transaction (docs/things.md).
 * Served with `serve({ components: [things] })`, or used directly when
 * built with `.db(db)`.
 *
 * @example
 * ```ts
 * const things = Things.create('shop').db(db)
 *   .noun('Customer', z.object({ email: z.string().email(), vip: z.boolean().optional() }), { indexes: ['email'] })
 *   .build()
 * const customers = things.noun('Customer')
 * await customers.create({ email: 'ada@example.com' })
 * things.events.subscribe((e) => console.log(e.data.type)) // 'Customer.created'
 * ```
 */
export class Things<M extends NounMap = Record<never, never>> implements Component {
  readonly kind = 'things'
  readonly name: string
  readonly #c: ThingsConfig
  #db: Database | undefined
  #events: Flow<ThingEvent> | undefined
  #prepared: Promise<Database> | undefined
  readonly #collections = new Map<string, ThingCollection<object>>()
  readonly #host: ThingsHost

  /** @internal Use {@link Things.create}. */
  constructor(c: ThingsConfig) {
    this.#c = c
    this.name = c.name
    this.#db = c.db
    // The collections reach the store through this view, so they see the database given at attach.
    const changes = new ChangeQueue(
      () => this.#prepare(),
      () => this.events,
      (things) => this.events.appendAfter(insertGate(this.name, things)),
    )
    this.#host = {
      name: c.name,
      regexTimeoutMs: c.regexTimeoutMs,
      prepared: () => this.#prepare(),
      change: (key, fn, create) => changes.run(key, fn, create),
    }
  }

  /**
   * Starts a builder. The name (letters, digits, `_`, `-`; at most 64)
   * keeps this store's Things apart from other stores' in the same database
   * and names its flow `things.<name>`.
   *
   * @throws ConfigError `THINGS_BAD_NAME`
   * @example
   * ```ts
   * const things = Things.create('main').db(db).noun('Customer').build()
   * ```
   */
  static create(name: string): ThingsBuilder {
    return new ThingsBuilder(name)
  }

  /**
   * The Things of one noun: a declared one (typed by its schema) or any
   * other valid noun (generic fields, no schema).
   *
   * @throws ValidationError for a noun outside `^[A-Z][A-Za-z0-9]{0,63}$`
   * @example
   * ```ts
   * const customers = things.noun('Customer') // typed by the declared schema
   * const vehicles = things.noun('Vehicle')   // never declared: Record<string, unknown>
   * ```
   */
  noun<N extends string>(name: N): ThingCollection<N extends keyof M ? M[N] : Record<string, unknown>> {
    let c = this.#collections.get(name)
    if (!c) {
      if (typeof name !== 'string' || !NOUN.test(name)) throw new ValidationError('noun', [{ path: 'noun', message: `${JSON.stringify(name)} is not a noun: a capital letter, then letters and digits (at most 64)` }])
      c = new ThingCollection<object>(this.#host, this.#c.nouns.get(name) ?? { name, schema: undefined })
      this.#collections.set(name, c)
    }
    return c as ThingCollection<N extends keyof M ? M[N] : Record<string, unknown>>
  }

  /**
   * The flow (`things.<name>`) every change of this store appends its
   * event to, in the change's transaction: offsets follow commit order.
   *
   * @throws ConfigError `THINGS_NO_DATABASE` before the store has a database (`.db(db)` or `serve()`)
   * @example
   * ```ts
   * for await (const e of things.events.stream({ offset: 0 })) console.log(e.offset, e.data.type, e.data.id)
   * ```
   */
  get events(): Flow<ThingEvent> {
    if (!this.#events) {
      if (!this.#db) throw new ConfigError('THINGS_NO_DATABASE', `Things "${this.name}" has no database yet: give it .db(db) or pass it to serve()`)
      this.#events = Flow.create(`things.${this.name}`).db(this.#db).build() as Flow<ThingEvent>
    }
    return this.#events
  }

  /**
   * Appends a custom `Noun.verb` event (not a change of a Thing) to the
   * store's flow. The five change verbs are kept for changes.
   *
   * @returns `{ id, offset }` of the stored event
   * @throws ValidationError for a type that is not `Noun.verb` (or uses a change verb), data that is not a
   *   plain object or breaks the value rule
   * @example
   * ```ts
   * await things.send('Order.shipped', { orderId: 'o-7', carrier: 'ups' }, { id: 'o-7' })
   * // event data: { type: 'Order.shipped', noun: 'Order', verb: 'shipped', id: 'o-7', data: { orderId: 'o-7', carrier: 'ups' } }
   * ```
   */
  async send(type: string, data: Record<string, unknown>, o: { id?: string } = {}): Promise<FlowAppendResult> {
    const dot = typeof type === 'string' ? type.indexOf('.') : -1
    const noun = dot < 0 ? '' : type.slice(0, dot)
    const verb = dot < 0 ? '' : type.slice(dot + 1)
    if (!NOUN.test(noun) || !VERB.test(verb)) throw new ValidationError('event type', [{ path: 'type', message: `${JSON.stringify(type)} is not Noun.verb (Order.shipped)` }])
    if (CHANGE_VERBS.has(verb)) throw new ValidationError('event type', [{ path: 'type', message: `"${verb}" is announced by the changes themselves; name a verb of your own` }])
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ValidationError('event data', [{ path: 'data', message: 'must be a plain object' }])
    if (o.id !== undefined && (typeof o.id !== 'string' || !/^[A-Za-z0-9_.:-]{1,128}$/.test(o.id))) throw new ValidationError('event', [{ path: 'id', message: 'must be 1-128 letters, digits, "_", ".", ":" or "-"' }])
    await this.#prepare()
    return this.events.append({ type, noun, verb, ...(o.id === undefined ? {} : { id: o.id }), data })
  }

  /**
   * This store's copy for one tenant (called by Tenants): the same nouns,
   * schemas and indexes, on the tenant's database, so its Things and its
   * event flow live in the tenant's schema.
   *
   * @example
   * ```ts
   * const acmeThings = (await tenants.get('acme')).use(things)
   * ```
   */
  forTenant(tenant: { db: Database }): Things<M> {
    return new Things<M>({ ...this.#c, db: tenant.db })
  }

  /** Migrates the database and creates the declared indexes, once. */
  #prepare(): Promise<Database> {
    this.#prepared ??= (async () => {
      const db = this.#db
      if (!db) throw new ConfigError('THINGS_NO_DATABASE', `Things "${this.name}" has no database: give it .db(db) or pass it to serve()`)
      await db.ready()
      for (const n of this.#c.nouns.values()) for (const path of n.indexes) await ensureIndex(db, this.name, n.name, path)
      return db
    })().catch((e: unknown) => {
      this.#prepared = undefined
      throw e
    })
    return this.#prepared
  }

  /** Takes the app's database when none was given, migrates it and creates the declared indexes (called by `serve()`). */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#db ??= rt.db
    await this.#prepare()
    await this.events.attach(rt)
  }

  /** Stops the event flow's subscriptions (called by `serve()`). */
  async detach(): Promise<void> {
    await this.#events?.detach()
  }

  /**
   * Mounts `GET /__onepipe/things/{name}/events` (`?offset=&limit=` or
   * `?tail=`), a read-only page of the event flow for the app's own
   * clients and the dashboard (called by `serve()`, behind its guard).
   * Nothing over HTTP can append to it: events come from changes.
   */
  routes(app: unknown, rt: RuntimeContext): void {
    this.#db ??= rt.db
    const logger = rt.logger ?? stderrLogger
    ;(app as Hono).get(`/__onepipe/things/${this.name}/events`, async (c) => {
      try {
        const offset = intParam(c, 'offset')
        const tail = intParam(c, 'tail')
        const limit = intParam(c, 'limit')
        if (offset !== undefined && tail !== undefined) throw new ValidationError('query', [{ path: 'tail', message: 'give offset (events after it) or tail (the last n), not both' }])
        const events = await this.events.read({ ...(offset !== undefined ? { offset } : {}), ...(tail !== undefined ? { tail } : {}), ...(limit !== undefined ? { limit } : {}) })
        return compressedJson(c, { events, nextOffset: events.at(-1)?.offset ?? offset ?? 0 })
      } catch (e) {
        return respondError(c, e, logger)
      }
    })
  }
}

/**
 * Fluent configuration of {@link Things}.
 *
 * @example
 * ```ts
 * Things.create('main').db(db).noun('Order', orderSchema, { indexes: ['status'] }).regexTimeout('1s').build()
 * ```
 */
export class ThingsBuilder<M extends NounMap = Record<never, never>> {
  readonly #c: ThingsConfig

  constructor(name: string) {
    if (typeof name !== 'string' || !STORE_NAME.test(name)) throw new ConfigError('THINGS_BAD_NAME', `Things name ${JSON.stringify(name)} is invalid: a letter, then letters, digits, "_" or "-" (at most 64)`)
    this.#c = { name, db: undefined, nouns: new Map(), regexTimeoutMs: DEFAULT_REGEX_TIMEOUT_MS }
  }

  /**
   * Declares a noun: its schema (any Standard Schema: Zod, Valibot…) checks
   * the fields of every create, update and replace, and `indexes` lists the
   * fields to index (dotted paths).
   *
   * @throws ConfigError `THINGS_BAD_NOUN` for a bad or repeated noun, a schema that is not a Standard Schema,
   *   or an index path that is not a field path
   * @example
   * ```ts
   * .noun('Customer', z.object({ email: z.string(), address: z.object({ city: z.string() }) }), { indexes: ['email', 'address.city'] })
   * ```
   */
  noun<N extends string, S extends StandardSchemaV1 = StandardSchemaV1<Record<string, unknown>>>(
    name: N,
    schema?: S,
    o: NounOptions = {},
  ): ThingsBuilder<M & Record<N, StandardSchemaV1.InferOutput<S> extends object ? StandardSchemaV1.InferOutput<S> : Record<string, unknown>>> {
    const where = `Noun ${JSON.stringify(name)} of Things "${this.#c.name}"`
    if (typeof name !== 'string' || !NOUN.test(name)) throw new ConfigError('THINGS_BAD_NOUN', `${where}: a noun is a capital letter, then letters and digits (at most 64)`)
    if (this.#c.nouns.has(name)) throw new ConfigError('THINGS_BAD_NOUN', `${where} is declared twice`)
    if (schema !== undefined && !isStandardSchema(schema)) throw new ConfigError('THINGS_BAD_NOUN', `${where}: the schema must be a Standard Schema (Zod, Valibot, ArkType…)`)
    const extra = Object.keys(o ?? {}).filter((k) => k !== 'indexes')
    if (extra.length > 0) throw new ConfigError('THINGS_BAD_NOUN', `${where}: unknown option ${extra.map((k) => JSON.stringify(k)).join(', ')}; the option is indexes`)
    const indexes = (o.indexes ?? []).map((p) => {
      const problem = pathProblem(p)
      if (problem !== undefined) throw new ConfigError('THINGS_BAD_NOUN', `${where}: index ${JSON.stringify(p)}: ${problem}`)
      return p.split('.')
    })
    this.#c.nouns.set(name, { name, schema, indexes })
    return this as unknown as ThingsBuilder<M & Record<N, StandardSchemaV1.InferOutput<S> extends object ? StandardSchemaV1.InferOutput<S> : Record<string, unknown>>>
  }

  /** The database (default: the app's, under `serve()`). @example `.db(db)` */
  db(db: Database): this {
    this.#c.db = assertDatabase(db, `Things "${this.#c.name}"`)
    return this
  }

  /**
   * How long a list or count with `$regex` may run (default 2 s) before
   * PostgreSQL stops it and the caller gets a ValidationError
   * `THING_QUERY_TIMEOUT`. The embedded engine has no statement timeout;
   * there the pattern size limit applies alone.
   *
   * @throws ConfigError `THINGS_BAD_TIMEOUT` outside 10 ms to 60 s
   * @example
   * ```ts
   * .regexTimeout('500ms')
   * ```
   */
  regexTimeout(d: Duration): this {
    const ms = parseDuration(d)
    if (ms < 10 || ms > 60_000) throw new ConfigError('THINGS_BAD_TIMEOUT', `Things "${this.#c.name}": regexTimeout must be from 10 ms to 60 s`)
    this.#c.regexTimeoutMs = ms
    return this
  }

  /** Builds the store and records it in the manifest. @example `.build()` */
  build(): Things<M> {
    const c: ThingsConfig = { ...this.#c, nouns: new Map(this.#c.nouns) }
    registerPrimitive({
      primitive: 'things',
      name: c.name,
      infrastructure: ['postgresql'],
      config: { nouns: [...c.nouns.values()].map((n) => ({ name: n.name, schema: n.schema !== undefined, indexes: n.indexes.map((p) => p.join('.')) })), events: `things.${c.name}` },
    })
    return new Things<M>(c)
  }
}
