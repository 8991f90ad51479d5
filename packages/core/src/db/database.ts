import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { ConfigError } from '../errors/index.js'
import { registerPrimitive } from '../manifest/index.js'
import { pgliteDriver, postgresDriver, schemaScopedDriver, type Driver, type DriverQueryable } from './drivers.js'
import { mapDbError } from './errors.js'
import { expireLeftLeases } from './exclusive.js'
import { ident, isIdent } from './ident.js'
import { inlineMigration, loadMigrations, ONEPIPE_SQL_DIR, runMigrations, type Migration, type MigrationResult } from './migrate.js'
import type { DatabaseKind, NotifyHandler, Queryable } from './types.js'

/** How a {@link Database} connects. Built by {@link DatabaseBuilder}. */
export interface DatabaseOptions {
  name: string
  /** `postgres://…` for PostgreSQL; undefined for embedded PGlite. */
  url: string | undefined
  /** PGlite data folder; `memory://` or undefined keeps it in memory. */
  dataDir: string | undefined
  /** Put every table in this schema (created if missing). */
  schema: string | undefined
  /** Pool size for PostgreSQL. */
  max: number
  /** Apply OnePipe's migrations on first use (default true). */
  migrate: boolean
  /** Extra migration folders applied after OnePipe's own, each with its own numbering. */
  migrationDirs: { dir: string; source: string }[]
  /** Migrations given as SQL text with `.migration()`, applied with the folders' under their source. */
  inlineMigrations: Migration[]
}

/** Databases built in this process and not yet closed, for `onepipe migrate <entry>`. */
const built = new Set<Database>()

/**
 * The databases built (and not closed) in this process, in build order. The
 * CLI loads an app entry without starting it and migrates each of these.
 *
 * @example
 * ```ts
 * await import('./dist/main.js') // with ONEPIPE_MANIFEST_ONLY=1
 * for (const db of builtDatabases()) await db.ready()
 * ```
 */
export function builtDatabases(): Database[] {
  return [...built]
}

function wrapQueryable(q: DriverQueryable, name: string): Queryable {
  return {
    async query<T>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      try {
        return (await q.query(text, params)).rows as T[]
      } catch (e) {
        throw mapDbError(e, name)
      }
    },
    async execute(text: string, params: readonly unknown[] = []): Promise<number> {
      try {
        return (await q.query(text, params)).rowCount
      } catch (e) {
        throw mapDbError(e, name)
      }
    },
  }
}

/**
 * SQL storage: PostgreSQL when given a URL, embedded PGlite otherwise, with
 * the same SQL and the same migrations on both. Connects and migrates on
 * first use; `ready()` does so eagerly.
 *
 * @example
 * ```ts
 * const db = Database.create('main').postgres(process.env.DATABASE_URL!).pool({ max: 20 }).build()
 * const rows = await db.query('SELECT now() AS t')
 * await db.transaction(async (tx) => { await tx.execute('UPDATE …', [1]) })
 * ```
 */
export class Database implements Queryable {
  readonly name: string
  readonly kind: DatabaseKind
  readonly schema: string | undefined
  readonly options: Readonly<DatabaseOptions>
  #driver: Promise<Driver> | undefined
  #ready: Promise<MigrationResult> | undefined
  #isReady = false
  #closed = false
  /** Set on a handle made by {@link Database.withSchema}: the owner whose connections it borrows. */
  readonly #owner: Database | undefined

  /** @internal Use {@link Database.create}; `owner` is for {@link Database.withSchema}. */
  constructor(options: DatabaseOptions, owner?: Database) {
    if (options.schema !== undefined && !isIdent(options.schema)) ident(options.schema)
    this.#owner = owner
    this.options = options
    this.name = options.name
    this.schema = options.schema
    this.kind = options.url ? 'postgres' : 'pglite'
  }

  /**
   * Starts a builder.
   *
   * @example
   * ```ts
   * const db = Database.create('main').schema('shop').build() // PGlite, or DATABASE_URL if set
   * ```
   */
  static create(name: string): DatabaseBuilder {
    return new DatabaseBuilder(name)
  }

  /**
   * A Database from the environment: `DATABASE_URL` → PostgreSQL, else
   * PGlite persisted in `.onepipe/db` (or `ONEPIPE_DATA_DIR/db`).
   *
   * @example
   * ```ts
   * const db = Database.fromEnv()
   * ```
   */
  static fromEnv(overrides: Partial<DatabaseOptions> = {}): Database {
    return new DatabaseBuilder(overrides.name ?? 'main').fromEnv(overrides).build()
  }

  /**
   * A second handle on the same PostgreSQL database and schema with a pool
   * of its own of `max` connections (default 1), for a background loop that
   * must not spread over the app's pool: work run through it holds exactly
   * those connections. Its migrations are this database's (it never runs
   * any). On the embedded engine, which is one connection anyway, it is
   * this database. Close it when done.
   *
   * @example
   * ```ts
   * const lane = db.dedicated('dispatch') // one connection for the dispatcher's claims
   * ```
   */
  dedicated(name: string, max = 1): Database {
    if (this.kind === 'pglite' || this.#owner) return this
    return new Database({ ...this.options, name: `${this.name}:${name}`, max, migrate: false })
  }

  /**
   * A handle on the same database and connections whose every statement
   * runs with `schema` on the search path, set per transaction (never left
   * on a pooled connection), and whose NOTIFY channels are that schema's.
   * The schema is created and migrated (OnePipe's and the app's migrations)
   * on first use, like the database itself. For schema-per-tenant storage
   * (Tenants in @onepipe/sdk); it costs one more statement per transaction,
   * pipelined with the first. Its `dedicated()` is itself; `close()` closes
   * only the handle, never the shared connections.
   *
   * @throws ConfigError `INVALID_IDENTIFIER` for a schema that is not an identifier (at most 63 of `A-Za-z0-9_`)
   * @example
   * ```ts
   * const acme = db.withSchema('tenant_acme')
   * await acme.query('SELECT count(*) FROM orders') // tenant_acme.orders
   * ```
   */
  withSchema(schema: string): Database {
    ident(schema)
    return new Database({ ...this.options, name: `${this.name}:${schema}`, schema }, this.#owner ?? this)
  }

  #connect(): Promise<Driver> {
    if (this.#closed) return Promise.reject(new ConfigError('DB_CLOSED', `Database "${this.name}" is closed`))
    const owner = this.#owner
    if (owner) {
      const schema = this.schema as string
      this.#driver ??= owner.#connect().then((d) => schemaScopedDriver(d, schema))
      return this.#driver
    }
    this.#driver ??= (this.options.url
      ? Promise.resolve(
          postgresDriver({
            url: this.options.url,
            max: this.options.max,
            schema: this.schema,
            applicationName: `onepipe:${this.name}@${hostname()}:${process.pid}`,
          }),
        )
      : pgliteDriver(this.options.dataDir, this.schema)
    ).catch((e: unknown) => {
      this.#driver = undefined
      throw mapDbError(e, this.name)
    })
    return this.#driver
  }

  /**
   * Connects and applies pending migrations (once per process; concurrent
   * processes serialize on an advisory lock).
   *
   * @example
   * ```ts
   * await db.ready()
   * ```
   */
  ready(): Promise<MigrationResult> {
    this.#ready ??= (async () => {
      const driver = await this.#connect()
      if (!this.options.migrate) return { applied: [], alreadyApplied: [] }
      const migrations = orderMigrations([
        ...[{ dir: ONEPIPE_SQL_DIR, source: 'onepipe' }, ...this.options.migrationDirs].flatMap((d) => loadMigrations(d.dir, d.source)),
        ...this.options.inlineMigrations,
      ])
      try {
        const r = await runMigrations(driver, this.schema, migrations)
        if (this.exclusive) await expireLeftLeases(driver)
        return r
      } catch (e) {
        throw mapDbError(e, this.name)
      }
    })()
      .then((r) => {
        this.#isReady = true
        return r
      })
      .catch((e: unknown) => {
        this.#ready = undefined
        throw e
      })
    return this.#ready
  }

  /**
   * Whether this process is the only one that can use the database while it
   * is open: an embedded (PGlite) database in a folder, which is locked. Its
   * leases need no timeout to tell a dead owner: at open, every lease left
   * behind belonged to a process that is gone.
   */
  get exclusive(): boolean {
    return this.kind === 'pglite' && this.options.dataDir !== undefined
  }

  async #q(): Promise<Queryable> {
    if (!this.#isReady) await this.ready()
    return wrapQueryable(await this.#connect(), this.name)
  }

  async query<T = Record<string, unknown>>(text: string, params: readonly unknown[] = []): Promise<T[]> {
    return (await this.#q()).query<T>(text, params)
  }

  async execute(text: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.#q()).execute(text, params)
  }

  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back
   * when it throws. Use only `tx` inside: on PGlite the outer handle waits
   * for the transaction to end.
   *
   * @example
   * ```ts
   * await db.transaction(async (tx) => {
   *   await tx.execute('UPDATE accounts SET balance = balance - $1 WHERE id = $2', [10, a])
   *   await tx.execute('UPDATE accounts SET balance = balance + $1 WHERE id = $2', [10, b])
   * })
   * ```
   */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    if (!this.#isReady) await this.ready()
    const driver = await this.#connect()
    try {
      return await driver.transaction((tx) => fn(wrapQueryable(tx, this.name)))
    } catch (e) {
      throw mapDbError(e, this.name)
    }
  }

  /**
   * The NOTIFY channel for `name` in this database's schema, so apps (and
   * tests) sharing one server in different schemas never hear each other.
   */
  channel(name: string): string {
    const full = (this.schema ? `${this.schema}__${name}` : name).toLowerCase()
    if (!isIdent(full)) ident(full)
    return full
  }

  /**
   * Calls `fn` with the payload of every NOTIFY on `channel` (schema-scoped).
   * Returns a function that stops listening.
   *
   * The listening connection reconnects by itself when it is lost, but a
   * NOTIFY sent while it was down is gone: `onReconnect` runs after each
   * reconnect so the caller re-checks whatever it waits for (every waiter of
   * a notification must, or it sleeps until its timeout).
   *
   * @example
   * ```ts
   * const stop = await db.listen('orders', (p) => console.log(p), { onReconnect: () => recheckAll() })
   * await db.notify('orders', 'new')
   * await stop()
   * ```
   */
  async listen(channel: string, fn: NotifyHandler, options: { onReconnect?: () => void } = {}): Promise<() => Promise<void>> {
    if (!this.#isReady) await this.ready()
    const driver = await this.#connect()
    try {
      return await driver.listen(this.channel(channel), fn, options.onReconnect)
    } catch (e) {
      throw mapDbError(e, this.name)
    }
  }

  /**
   * Sends a NOTIFY on `channel` (schema-scoped); delivered at commit when
   * called inside a transaction through `tx.execute('SELECT pg_notify(…)')`.
   *
   * @example
   * ```ts
   * await db.notify('orders', JSON.stringify({ id }))
   * ```
   */
  async notify(channel: string, payload: string): Promise<void> {
    await this.execute('SELECT pg_notify($1, $2)', [this.channel(channel), payload])
  }

  /**
   * Checks the database answers (for `/ready`).
   *
   * @example
   * ```ts
   * lifecycle.healthCheck('db', () => db.ping())
   * ```
   */
  async ping(): Promise<void> {
    await this.query('SELECT 1')
  }

  /**
   * Closes the pool (or the embedded engine). Further queries fail.
   *
   * @example
   * ```ts
   * lifecycle.onShutdown('db', () => db.close(), 90)
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    built.delete(this)
    const d = this.#driver
    this.#driver = undefined
    if (d) await (await d.catch(() => undefined))?.close()
  }
}

/**
 * All migrations in the order they apply: OnePipe's first, then each other
 * source in the order it was first given, by number within a source. One
 * number twice within a source (a folder and an inline migration, say) is
 * refused rather than guessed.
 */
function orderMigrations(all: Migration[]): Migration[] {
  const sources = [...new Set(all.map((m) => m.source))]
  const seen = new Set<string>()
  for (const m of all) {
    const key = `${m.source}:${m.id}`
    if (seen.has(key)) throw new ConfigError('MIGRATION_DUPLICATE', `Two migrations of "${m.source}" are numbered ${m.id}; give each its own number`)
    seen.add(key)
  }
  return sources.flatMap((src) => all.filter((m) => m.source === src).sort((a, b) => a.id - b.id))
}

/**
 * Checks that a builder's `.db(x)` got a Database, so a `.db(undefined)`
 * (an import not yet initialised, a typo) fails at build time instead of
 * silently using another database.
 *
 * @example
 * ```ts
 * db(db: Database): this { this.#db = assertDatabase(db, `Flow "${name}"`); return this }
 * ```
 */
export function assertDatabase(db: unknown, owner: string): Database {
  if (!(db instanceof Database)) {
    throw new ConfigError('INVALID_DATABASE', `${owner}.db() needs a Database (got ${db === null ? 'null' : typeof db}); build one with Database.create(name).build()`)
  }
  return db
}

/**
 * Fluent configuration for a {@link Database}.
 *
 * @example
 * ```ts
 * Database.create('main').postgres('postgres://localhost/app').pool({ max: 10 }).schema('app').build()
 * ```
 */
export class DatabaseBuilder {
  #o: DatabaseOptions

  constructor(name: string) {
    this.#o = { name, url: undefined, dataDir: undefined, schema: undefined, max: 10, migrate: true, migrationDirs: [], inlineMigrations: [] }
    this.fromEnv()
  }

  /** Reads DATABASE_URL / ONEPIPE_DATA_DIR (done by default at create). */
  fromEnv(overrides: Partial<DatabaseOptions> = {}): this {
    const url = process.env.DATABASE_URL
    if (url) {
      if (!/^postgres(ql)?:\/\//.test(url)) throw new ConfigError('INVALID_DATABASE_URL', `DATABASE_URL "${url.replace(/:[^:@/]*@/, ':***@')}" is not a postgres:// URL; fix it, or unset it to use the embedded database`)
      this.#o.url = url
    } else this.#o.dataDir = resolve(process.env.ONEPIPE_DATA_DIR ?? '.onepipe', 'db')
    if (process.env.ONEPIPE_DB_SCHEMA) this.#o.schema = process.env.ONEPIPE_DB_SCHEMA
    Object.assign(this.#o, overrides)
    return this
  }

  /** Use PostgreSQL at `url`. */
  postgres(url: string): this {
    if (!/^postgres(ql)?:\/\//.test(url)) throw new ConfigError('INVALID_DATABASE_URL', `"${url.replace(/:[^:@/]*@/, ':***@')}" is not a postgres:// URL`)
    this.#o.url = url
    this.#o.dataDir = undefined
    return this
  }

  /** Use embedded PGlite persisted in `dir` (`memory://` for none). */
  pglite(dir = resolve('.onepipe', 'db')): this {
    this.#o.url = undefined
    this.#o.dataDir = dir === 'memory://' ? undefined : dir
    return this
  }

  /** Pool size for PostgreSQL (default 10). */
  pool(o: { max: number }): this {
    if (!Number.isInteger(o.max) || o.max < 1) throw new ConfigError('INVALID_POOL', `pool.max must be a positive integer, got ${o.max}`)
    this.#o.max = o.max
    return this
  }

  /** Keep every table in this schema. */
  schema(name: string): this {
    ident(name)
    this.#o.schema = name
    return this
  }

  /** Turn automatic migrations off (run `onepipe migrate` instead). */
  autoMigrate(on: boolean): this {
    this.#o.migrate = on
    return this
  }

  /**
   * Also apply the numbered `.sql` files in `dir` (after OnePipe's own), with
   * their own numbering under `source` in the ledger.
   */
  migrations(dir: string, source = 'app'): this {
    if (source === 'onepipe') throw new ConfigError('INVALID_MIGRATION_SOURCE', 'The migration source "onepipe" is reserved; name yours differently')
    this.#o.migrationDirs.push({ dir, source })
    return this
  }

  /**
   * Also apply one migration given as SQL text: the same rules as a file
   * (`name` is `NNNNNN_words`, numbered within `source`, append-only: never
   * edit an applied one, add the next number), so a small app keeps its
   * schema beside its code. Applied on first use, after OnePipe's own, in one
   * transaction with every other pending migration.
   *
   * @throws ConfigError `INVALID_MIGRATION` for a bad name, `MIGRATION_DUPLICATE` for a reused number
   *
   * @example
   * ```ts
   * Database.create('main')
   *   .migration('000001_orders', 'CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL)')
   *   .migration('000002_order_notes', 'ALTER TABLE orders ADD COLUMN note text')
   *   .build()
   * ```
   */
  migration(name: string, sql: string, source = 'app'): this {
    if (source === 'onepipe') throw new ConfigError('INVALID_MIGRATION_SOURCE', 'The migration source "onepipe" is reserved; name yours differently')
    const m = inlineMigration(name, sql, source)
    if (this.#o.inlineMigrations.some((x) => x.source === m.source && x.id === m.id)) {
      throw new ConfigError('MIGRATION_DUPLICATE', `Two migrations of "${source}" are numbered ${m.id}; give each its own number`)
    }
    this.#o.inlineMigrations.push(m)
    return this
  }

  /** Builds the Database and records it in the manifest. */
  build(): Database {
    const db = new Database({ ...this.#o, migrationDirs: [...this.#o.migrationDirs], inlineMigrations: [...this.#o.inlineMigrations] })
    built.add(db)
    registerPrimitive({
      primitive: 'database',
      name: db.name,
      infrastructure: ['postgresql'],
      config: {
        kind: db.kind,
        schema: db.schema ?? null,
        pool: db.options.max,
        migrations: [...db.options.migrationDirs.map((d) => `${d.source}:${d.dir}`), ...db.options.inlineMigrations.map((m) => `${m.source}:${m.id}_${m.name}`)],
      },
    })
    return db
  }
}
