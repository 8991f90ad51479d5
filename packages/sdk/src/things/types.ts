/**
 * The fields OnePipe adds to every Thing; the user's own fields sit beside
 * them. Times are ISO 8601 strings with milliseconds, from the database clock.
 *
 * @example
 * ```ts
 * { $id: 'c-1', $type: 'Customer', $version: 2, $created_at: '2025-01-31T09:00:00.000Z',
 *   $updated_at: '2025-01-31T09:05:12.345Z', $deleted_at: null }
 * ```
 */
export interface ThingMeta {
  $id: string
  /** The noun (`Customer`). */
  $type: string
  /** 1 when created, one more with every change. */
  $version: number
  $created_at: string
  $updated_at: string
  /** When it was soft-deleted; null while it is not. */
  $deleted_at: string | null
}

/**
 * A Thing as every operation returns it: its {@link ThingMeta} fields and
 * the user's fields.
 *
 * @example
 * ```ts
 * const c: Thing<{ email: string }> = await customers.get('c-1')
 * c.email // 'ada@example.com'
 * c.$version // 1
 * ```
 */
export type Thing<T = Record<string, unknown>> = ThingMeta & T

/**
 * A JSON value in a filter: what a field is compared with.
 *
 * @example
 * ```ts
 * 'open'   42   true   null   ['a', 'b']   { city: 'Paris' }
 * ```
 */
export type FilterValue = string | number | boolean | null | FilterValue[] | { [k: string]: FilterValue }

/**
 * The operators of one field. Several in one object must all hold.
 *
 * @example
 * ```ts
 * { $gte: 100, $lt: 500 }
 * { $in: ['open', 'pending'] }
 * { $exists: false }
 * { $regex: '^ada@' }
 * { $not: { $gt: 5 } }
 * ```
 */
export interface FieldCondition {
  $eq?: FilterValue
  $ne?: FilterValue
  $gt?: string | number
  $gte?: string | number
  $lt?: string | number
  $lte?: string | number
  $in?: (string | number | boolean | null)[]
  $nin?: (string | number | boolean | null)[]
  $exists?: boolean
  /** A PostgreSQL regular expression (POSIX ARE), at most 256 characters. */
  $regex?: string
  $not?: FieldCondition
}

/**
 * A filter: field paths (`status`, `address.city`, or the built-in `$id`,
 * `$version`, `$created_at`, `$updated_at`, `$deleted_at`) to a value
 * (equality) or a {@link FieldCondition}, combined with AND; `$and`, `$or`
 * and `$not` nest filters. docs/things.md gives the type and ordering rules.
 *
 * @example
 * ```ts
 * { status: 'open', amount: { $gt: 100 }, 'address.city': { $in: ['Paris', 'Lyon'] } }
 * { $or: [{ vip: true }, { amount: { $gte: 1000 } }], $not: { status: 'closed' } }
 * ```
 */
export interface Where {
  $and?: Where[]
  $or?: Where[]
  $not?: Where
  [field: string]: FilterValue | FieldCondition | Where | Where[] | undefined
}

/**
 * One sort key: a field path as in {@link Where}, ascending unless
 * `direction` is `desc`. A string key is the path, `-path` for descending.
 *
 * @example
 * ```ts
 * [{ field: 'amount', direction: 'desc' }, 'name']
 * '-$created_at'
 * ```
 */
export type OrderBy = string | { field: string; direction?: 'asc' | 'desc' } | (string | { field: string; direction?: 'asc' | 'desc' })[]

/**
 * What `list()` returns: matching Things, filtered in SQL before the page is
 * cut. Pages are stable: `$id` always ends the sort.
 *
 * @example
 * ```ts
 * { where: { status: 'open' }, orderBy: '-amount', limit: 50, offset: 100 }
 * ```
 */
export interface ListOptions {
  where?: Where
  orderBy?: OrderBy
  /** 1 to 1000, default 100. */
  limit?: number
  /** Things to skip first, default 0. */
  offset?: number
  /** Include soft-deleted Things (default false). */
  includeDeleted?: boolean
}

/**
 * The verbs of the events changes append (`Customer.created` …).
 *
 * @example
 * ```ts
 * const verb: ThingVerb = 'softDeleted'
 * ```
 */
export type ThingVerb = 'created' | 'updated' | 'deleted' | 'softDeleted' | 'restored'

/**
 * One event in a Things store's flow (`things.events`, named
 * `things.<name>`). A change's `data` is the Thing after it (before it, for
 * `deleted`), and `version` the version the change made (for `deleted`, one
 * past the last stored one). A custom event sent with `things.send` has the
 * data it was given and no version.
 *
 * @example
 * ```ts
 * { type: 'Customer.created', noun: 'Customer', verb: 'created', id: 'c-1', version: 1,
 *   data: { $id: 'c-1', $type: 'Customer', $version: 1, …, email: 'ada@example.com' } }
 * { type: 'Order.shipped', noun: 'Order', verb: 'shipped', data: { orderId: 'o-7' } }
 * ```
 */
export interface ThingEvent {
  type: string
  noun: string
  verb: string
  id?: string
  version?: number
  data: Record<string, unknown>
}

/**
 * How a noun is declared on the builder.
 *
 * @example
 * ```ts
 * { indexes: ['email', 'address.city'] }
 * ```
 */
export interface NounOptions {
  /**
   * Fields to index (dotted paths, as in filters): each gets an expression
   * index on its text for this store and noun, used by equality, `$in` and
   * string ranges on that field.
   */
  indexes?: string[]
}
