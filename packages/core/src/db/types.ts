/** A row as returned by a query: column name to value. */
export type Row = Record<string, unknown>

/**
 * Anything that runs SQL: a {@link Database} or the transaction handle given
 * to `transaction(fn)`. Values are always passed as parameters (`$1`, `$2`…),
 * never spliced into the text.
 *
 * Types come back the same on PostgreSQL and PGlite: `int8` as a JS number,
 * `numeric` as a string, `timestamptz` as a Date, `json`/`jsonb` parsed.
 */
export interface Queryable {
  /**
   * Runs one statement and returns its rows.
   *
   * @example
   * ```ts
   * const [order] = await db.query<{ id: string }>('SELECT id FROM orders WHERE id = $1', [id])
   * ```
   */
  query<T = Row>(text: string, params?: readonly unknown[]): Promise<T[]>
  /**
   * Runs one statement and returns how many rows it changed.
   *
   * @example
   * ```ts
   * const n = await db.execute('DELETE FROM orders WHERE id = $1', [id])
   * ```
   */
  execute(text: string, params?: readonly unknown[]): Promise<number>
}

/** What a NOTIFY delivers to a listener. */
export type NotifyHandler = (payload: string) => void

/** Which engine serves a {@link Database}. */
export type DatabaseKind = 'postgres' | 'pglite'
