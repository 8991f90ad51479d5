import {
  ConflictError,
  DatabaseError,
  encodeValue,
  NotFoundError,
  TransportError,
  validate,
  ValidationError,
  type Database,
  type Queryable,
  type StandardSchemaV1,
} from '@onepipe/core'
import { randomUUID } from 'node:crypto'
import type { Change, Changed, CreateChange } from './batch.js'
import type { RegexUse } from './filter.js'
import { pageOf } from './order.js'
import { countStatement, deleteThing, insertThing, listStatement, regexCompiles, selectThing, setDeleted, updateThing, withStatementTimeout, type Key, type Selection, type Statement, type ThingRow } from './store.js'
import type { ListOptions, OrderBy, Thing, ThingVerb, Where } from './types.js'

const ID = /^[A-Za-z0-9_.:-]{1,128}$/
const LIST_OPTIONS = new Set(['where', 'orderBy', 'limit', 'offset', 'includeDeleted'])

/** @internal What a collection needs from its Things store. */
export interface ThingsHost {
  readonly name: string
  /** The database, migrated and with the declared indexes. */
  prepared(): Promise<Database>
  /** Runs a change of the Thing `key` in the store's next transaction (with its event); resolves once committed. `create`: a create's one-statement form. */
  change<R>(key: string, change: Change<R>, create?: CreateChange<R>): Promise<R>
  readonly regexTimeoutMs: number
}

/** @internal A declared (or generic) noun. */
export interface NounSpec {
  name: string
  schema: StandardSchemaV1 | undefined
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

/** The path of the first field name holding a "." (filters read "." as a path separator), walking nested objects and arrays. */
function dottedField(v: unknown, at = ''): string | undefined {
  const stack: [unknown, string][] = [[v, at]]
  while (stack.length > 0) {
    const [x, path] = stack.pop() as [unknown, string]
    if (typeof x !== 'object' || x === null) continue
    for (const [k, child] of Object.entries(x)) {
      const here = path === '' ? k : `${path}.${k}`
      if (!Array.isArray(x) && k.includes('.')) return here
      stack.push([child, here])
    }
  }
  return undefined
}

function toThing<T>(row: ThingRow): Thing<T> {
  return {
    $id: row.id,
    $type: row.type,
    $version: Number(row.version),
    $created_at: row.created_at.toISOString(),
    $updated_at: row.updated_at.toISOString(),
    $deleted_at: row.deleted_at === null ? null : row.deleted_at.toISOString(),
    ...row.data,
  } as Thing<T>
}

/**
 * The Things of one noun in a store: `things.noun('Customer')`. Every
 * change bumps `$version` by 1 and appends its event to the store's flow in
 * the same transaction (docs/things.md). Data follows the value rule
 * (docs/values.md) and, for a declared noun, its schema.
 *
 * @example
 * ```ts
 * const customers = things.noun('Customer')
 * const c = await customers.create({ email: 'ada@example.com', address: { city: 'Paris' } })
 * await customers.update(c.$id, { vip: true }, { version: c.$version })
 * const page = await customers.list({ where: { 'address.city': 'Paris' }, orderBy: '-$created_at', limit: 20 })
 * ```
 */
export class ThingCollection<T extends object = Record<string, unknown>> {
  /** The noun (`Customer`). */
  readonly noun: string
  readonly #host: ThingsHost
  readonly #schema: StandardSchemaV1 | undefined

  /** @internal Use `things.noun(name)`. */
  constructor(host: ThingsHost, spec: NounSpec) {
    this.#host = host
    this.noun = spec.name
    this.#schema = spec.schema
  }

  /** Which Thing a change is about, for ordering the changes of one Thing. */
  #keyOf(id: string): string {
    return `${this.noun}\u0000${id}`
  }

  #key(id: string): Key {
    return { store: this.#host.name, type: this.noun, id }
  }

  #subject(what: string): string {
    return `${what} of ${this.noun} in Things "${this.#host.name}"`
  }

  /** The user's fields as the JSON text to store: an object, no `$` field, valid for the schema, storable. */
  async #encode(data: unknown): Promise<string> {
    const subject = this.#subject('data')
    const plain = (v: unknown): Record<string, unknown> => {
      if (!isPlainObject(v)) throw new ValidationError(subject, [{ path: '', message: "a Thing's data is a plain object of fields" }])
      const taken = Object.keys(v).find((k) => k.startsWith('$'))
      if (taken !== undefined) throw new ValidationError(subject, [{ path: taken, message: 'field names starting with "$" are reserved for the fields OnePipe adds ($id, $type, $version, …)' }])
      const dotted = dottedField(v)
      if (dotted !== undefined) throw new ValidationError(subject, [{ path: dotted, message: 'a field name cannot hold "." (filters and sorts read it as a path: "address.city"); rename the field' }])
      return v
    }
    const value = this.#schema ? plain(await validate(this.#schema, plain(data), subject)) : plain(data)
    return encodeValue(value, { subject })
  }

  #checkId(id: unknown): string {
    if (typeof id !== 'string' || !ID.test(id)) throw new ValidationError(this.#subject('id'), [{ path: 'id', message: 'must be 1-128 letters, digits, "_", ".", ":" or "-"' }])
    return id
  }

  #checkVersion(version: unknown): number | undefined {
    if (version === undefined) return undefined
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) throw new ValidationError(this.#subject('version'), [{ path: 'version', message: 'must be a positive integer ($version of the Thing read)' }])
    return version
  }

  #notFound(id: string): NotFoundError {
    return new NotFoundError('THING_NOT_FOUND', `No ${this.noun} "${id}" in Things "${this.#host.name}"`, { noun: this.noun, id })
  }

  /** The Thing as a change left it, with the event that announces the change. */
  #changed(verb: ThingVerb, row: ThingRow, version = Number(row.version)): Changed<Thing<T>> {
    const thing = toThing<T>(row)
    return { result: thing, event: { type: `${this.noun}.${verb}`, noun: this.noun, verb, id: row.id, version, data: thing as unknown as Record<string, unknown> } }
  }

  /** Why a conditional change matched no row: not there (or soft-deleted, unless allowed), or another version. */
  async #whyNot(tx: Queryable, id: string, version: number | undefined, allowDeleted: boolean): Promise<never> {
    const row = await selectThing(tx, this.#key(id))
    if (!row || (row.deleted_at !== null && !allowDeleted)) throw this.#notFound(id)
    throw new ConflictError('THING_VERSION_CONFLICT', `${this.noun} "${id}" is at version ${row.version}, not ${version}; read it again and retry`, { noun: this.noun, id, expected: version, actual: Number(row.version) })
  }

  /**
   * Creates a Thing with a new id (a UUID) or the one given.
   *
   * @returns the Thing at `$version` 1, after its `created` event is stored
   * @throws ValidationError (nothing stored) for data that is not a plain object, has a `$` field, fails the
   *   noun's schema or the value rule (naming the path), or a bad id; ConflictError `THING_EXISTS` for a taken id
   * @example
   * ```ts
   * const c = await customers.create({ email: 'ada@example.com' }, { id: 'c-1' })
   * // { $id: 'c-1', $type: 'Customer', $version: 1, $created_at: '…', $updated_at: '…', $deleted_at: null, email: 'ada@example.com' }
   * ```
   */
  async create(data: T, o: { id?: string } = {}): Promise<Thing<T>> {
    const id = o.id === undefined ? randomUUID() : this.#checkId(o.id)
    const json = await this.#encode(data)
    const exists = () => new ConflictError('THING_EXISTS', `${this.noun} "${id}" already exists in Things "${this.#host.name}"`, { noun: this.noun, id })
    return this.#host.change(
      this.#keyOf(id),
      async (tx) => {
        const row = await insertThing(tx, this.#key(id), json)
        if (!row) throw exists()
        return this.#changed('created', row)
      },
      { thing: { type: this.noun, id, json }, finish: (row) => toThing<T>(row as unknown as ThingRow), conflict: exists },
    )
  }

  /**
   * Reads one Thing.
   *
   * @throws NotFoundError `THING_NOT_FOUND` when there is none (or it is soft-deleted, unless `includeDeleted`)
   * @example
   * ```ts
   * const c = await customers.get('c-1') // { $id: 'c-1', $version: 3, …, email: 'ada@example.com' }
   * ```
   */
  async get(id: string, o: { includeDeleted?: boolean } = {}): Promise<Thing<T>> {
    this.#checkId(id)
    const row = await selectThing(await this.#host.prepared(), this.#key(id))
    if (!row || (row.deleted_at !== null && o.includeDeleted !== true)) throw this.#notFound(id)
    return toThing<T>(row)
  }

  /**
   * Merges `patch` into the Thing's fields (shallow: each top-level field
   * given replaces the stored one; a field set to `undefined` is removed,
   * as JSON leaves it out). With `version`, only if the Thing is still at
   * that version.
   *
   * @throws NotFoundError `THING_NOT_FOUND`; ConflictError `THING_VERSION_CONFLICT` for a stale `version`;
   *   ValidationError (nothing changed) for a merged value the schema or the value rule refuses
   * @example
   * ```ts
   * const c2 = await customers.update('c-1', { vip: true }, { version: 1 }) // c2.$version === 2
   * ```
   */
  async update(id: string, patch: Partial<T>, o: { version?: number } = {}): Promise<Thing<T>> {
    this.#checkId(id)
    const version = this.#checkVersion(o.version)
    if (!isPlainObject(patch)) throw new ValidationError(this.#subject('patch'), [{ path: '', message: 'a patch is a plain object of fields' }])
    return this.#host.change(this.#keyOf(id), async (tx) => {
      const row = await selectThing(tx, this.#key(id), true)
      if (!row || row.deleted_at !== null) throw this.#notFound(id)
      if (version !== undefined && Number(row.version) !== version) return this.#whyNot(tx, id, version, false)
      const json = await this.#encode({ ...row.data, ...patch })
      const next = await updateThing(tx, this.#key(id), json, Number(row.version))
      if (!next) return this.#whyNot(tx, id, Number(row.version), false)
      return this.#changed('updated', next)
    })
  }

  /**
   * Replaces all of the Thing's fields (its event is `updated`).
   *
   * @throws as {@link ThingCollection.update}
   * @example
   * ```ts
   * await customers.replace('c-1', { email: 'ada@new.example' }, { version: 2 })
   * ```
   */
  async replace(id: string, data: T, o: { version?: number } = {}): Promise<Thing<T>> {
    this.#checkId(id)
    const version = this.#checkVersion(o.version)
    const json = await this.#encode(data)
    return this.#host.change(this.#keyOf(id), async (tx) => {
      const next = await updateThing(tx, this.#key(id), json, version)
      if (!next) return this.#whyNot(tx, id, version, false)
      return this.#changed('updated', next)
    })
  }

  /**
   * Deletes the Thing for good (soft-deleted or not). Its `deleted` event
   * carries it as it was.
   *
   * @returns the Thing as it was
   * @throws NotFoundError `THING_NOT_FOUND`; ConflictError `THING_VERSION_CONFLICT` for a stale `version`
   * @example
   * ```ts
   * const gone = await customers.delete('c-1') // gone.email === 'ada@example.com'
   * ```
   */
  async delete(id: string, o: { version?: number } = {}): Promise<Thing<T>> {
    this.#checkId(id)
    const version = this.#checkVersion(o.version)
    return this.#host.change(this.#keyOf(id), async (tx) => {
      const row = await deleteThing(tx, this.#key(id), version)
      if (!row) return this.#whyNot(tx, id, version, true)
      return this.#changed('deleted', row, Number(row.version) + 1)
    })
  }

  /**
   * Hides the Thing from `get`, `list`, `count` and changes until it is
   * restored. Soft-deleting it again changes nothing (no event).
   *
   * @throws NotFoundError `THING_NOT_FOUND`; ConflictError `THING_VERSION_CONFLICT` for a stale `version`
   * @example
   * ```ts
   * const c = await customers.softDelete('c-1') // c.$deleted_at: '2025-01-31T10:00:00.000Z'
   * ```
   */
  async softDelete(id: string, o: { version?: number } = {}): Promise<Thing<T>> {
    return this.#setDeleted(id, true, o.version)
  }

  /**
   * Brings a soft-deleted Thing back. Restoring one that is not deleted
   * changes nothing (no event).
   *
   * @throws NotFoundError `THING_NOT_FOUND`; ConflictError `THING_VERSION_CONFLICT` for a stale `version`
   * @example
   * ```ts
   * const c = await customers.restore('c-1') // c.$deleted_at === null
   * ```
   */
  async restore(id: string, o: { version?: number } = {}): Promise<Thing<T>> {
    return this.#setDeleted(id, false, o.version)
  }

  async #setDeleted(id: string, deleted: boolean, v: number | undefined): Promise<Thing<T>> {
    this.#checkId(id)
    const version = this.#checkVersion(v)
    return this.#host.change(this.#keyOf(id), async (tx) => {
      const row = await setDeleted(tx, this.#key(id), deleted, version)
      if (row) return this.#changed(deleted ? 'softDeleted' : 'restored', row)
      const now = await selectThing(tx, this.#key(id))
      // Already so: nothing changes, nothing is announced (a stale version is still a conflict).
      if (now && (now.deleted_at !== null) === deleted && (version === undefined || Number(now.version) === version)) return { result: toThing<T>(now) }
      return this.#whyNot(tx, id, version, true)
    })
  }

  /**
   * One page of Things matching `where`, filtered in SQL before `offset`
   * and `limit` apply, sorted by `orderBy` and then `$id`.
   *
   * @throws ValidationError naming the path of a bad filter, sort key, limit or offset, of a `$regex`
   *   PostgreSQL refuses, or (code `THING_QUERY_TIMEOUT`) of a `$regex` query that ran past the regex timeout
   * @example
   * ```ts
   * await orders.list({ where: { status: 'open', amount: { $gt: 100 } }, orderBy: [{ field: 'amount', direction: 'desc' }], limit: 50 })
   * ```
   */
  async list(o: ListOptions = {}): Promise<Thing<T>[]> {
    const unknown = Object.keys(o ?? {}).find((k) => !LIST_OPTIONS.has(k))
    if (unknown !== undefined) throw new ValidationError('list options', [{ path: unknown, message: `unknown option; the options are ${[...LIST_OPTIONS].join(', ')}` }])
    const page = pageOf(o.limit, o.offset)
    const rows = await this.#run<ThingRow>(listStatement(this.#selection(o.where, o.includeDeleted), o.orderBy, page.limit, page.offset))
    return rows.map((r) => toThing<T>(r))
  }

  /**
   * How many Things match `where`.
   *
   * @throws as {@link ThingCollection.list}
   * @example
   * ```ts
   * const open = await orders.count({ status: 'open' }) // 42
   * ```
   */
  async count(where?: Where, o: { includeDeleted?: boolean } = {}): Promise<number> {
    const [row] = await this.#run<{ n: number }>(countStatement(this.#selection(where, o.includeDeleted)))
    if (!row) throw new TransportError('THINGS_NO_ANSWER', `The database answered the count of ${this.noun} with no row; retry`)
    return Number(row.n)
  }

  /**
   * The first Thing matching `where` in `orderBy` order (then `$id`), or null.
   *
   * @throws as {@link ThingCollection.list}
   * @example
   * ```ts
   * const biggest = await orders.findFirst({ status: 'open' }, { orderBy: '-amount' })
   * ```
   */
  async findFirst(where?: Where, o: { orderBy?: OrderBy; includeDeleted?: boolean } = {}): Promise<Thing<T> | null> {
    const [first] = await this.list({ ...(where === undefined ? {} : { where }), ...(o.orderBy === undefined ? {} : { orderBy: o.orderBy }), includeDeleted: o.includeDeleted === true, limit: 1 })
    return first ?? null
  }

  #selection(where: Where | undefined, includeDeleted: boolean | undefined): Selection {
    return { store: this.#host.name, type: this.noun, where, includeDeleted: includeDeleted === true }
  }

  /** Runs a list or count; with a `$regex`, in a transaction under the regex timeout, its failures named. */
  async #run<R>(s: Statement): Promise<R[]> {
    const db = await this.#host.prepared()
    if (s.regexes.length === 0) return db.query<R>(s.text, s.params)
    try {
      return await withStatementTimeout(db, this.#host.regexTimeoutMs, (tx) => tx.query<R>(s.text, s.params))
    } catch (e) {
      throw await this.#regexFailure(db, e, s.regexes)
    }
  }

  /** A refused or too slow `$regex` is the caller's to fix: a ValidationError naming it, never a 500. */
  async #regexFailure(db: Database, e: unknown, regexes: RegexUse[]): Promise<unknown> {
    if (!(e instanceof DatabaseError)) return e
    if (e.sqlState === '57014') {
      const paths = regexes.map((r) => r.path).join(', ')
      return new ValidationError('filter', [{ path: regexes[0]?.path ?? '', message: `the query with $regex (${paths}) ran past ${this.#host.regexTimeoutMs} ms and was stopped; simplify the pattern or narrow the filter with other conditions` }], { code: 'THING_QUERY_TIMEOUT' })
    }
    // 2201B: invalid regular expression (syntax, or too complex); 54001: too deep to compile.
    if (e.sqlState !== '2201B' && e.sqlState !== '54001') return e
    let bad = regexes[0]
    for (const r of regexes) {
      if (!(await regexCompiles(db, r.pattern))) {
        bad = r
        break
      }
    }
    return new ValidationError('filter', [{ path: bad?.path ?? '', message: `PostgreSQL refused the regular expression: ${e.message}` }])
  }
}
