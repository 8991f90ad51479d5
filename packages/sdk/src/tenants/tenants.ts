import { assertDatabase, ConfigError, NotFoundError, ValidationError, registerPrimitive, stderrLogger, type Component, type Database, type Logger, type RuntimeContext } from '@onepipe/core'
import type { Hono } from 'hono'
import { AuthError } from '../auth/errors.js'
import { mountSqlConsoleRoutes } from '../sqlconsole/http.js'
import type { AuthUser } from '../rest/auth.js'
import { checkDomain, checkTenantName, tenantOf, tenantSchema, type TenantSource } from './names.js'
import { allTenants, registerTenant, tenantRow } from './sql.js'

/**
 * A component that can be run once per tenant: Things and Semantic are.
 * `forTenant` builds this template's copy for one tenant, on its database.
 */
export interface TenantTemplate {
  readonly kind: string
  readonly name: string
  forTenant(tenant: Tenant): Component
}

/** Who may act in a tenant over HTTP and RPC. */
export type TenantAccess = (user: AuthUser | undefined, tenant: string) => boolean | Promise<boolean>

/**
 * By default an administrator reaches every tenant, anyone else only the
 * tenants their identity names: `user.tenant` (one) or `user.tenants` (a
 * list), as an `AuthProvider` or a custom claim sets them.
 */
export const defaultTenantAccess: TenantAccess = (user, tenant) => {
  if (!user) return false
  if (user.roles?.includes('admin') === true) return true
  if (user.tenant === tenant) return true
  return Array.isArray(user.tenants) && (user.tenants as unknown[]).includes(tenant)
}

/**
 * One tenant in this process: its database (the app's, with the tenant's
 * schema on the search path of every transaction) and its copies of the
 * tenant-scoped components.
 *
 * @example
 * ```ts
 * const acme = await tenants.get('acme')
 * await acme.use(things).noun('Order').create({ total: 12 }) // stored in schema t_acme
 * ```
 */
export class Tenant {
  readonly #instances = new Map<TenantTemplate, Component>()
  readonly #templates: readonly TenantTemplate[]

  /** @internal Made by {@link Tenants.get}. */
  constructor(
    /** The tenant's name (`acme`). */
    readonly name: string,
    /** The schema its data lives in (`t_acme`). */
    readonly schema: string,
    /** The app's database scoped to the tenant's schema. */
    readonly db: Database,
    templates: readonly TenantTemplate[],
  ) {
    this.#templates = templates
  }

  /**
   * This tenant's copy of a component given to `Tenants…scope(…)`.
   *
   * @throws ConfigError `TENANTS_NOT_SCOPED` for a component the Tenants were not given
   * @example
   * ```ts
   * const orders = acme.use(things).noun('Order')
   * ```
   */
  use<T extends TenantTemplate>(template: T): ReturnType<T['forTenant']> & Omit<T, 'forTenant'> {
    let c = this.#instances.get(template)
    if (!c) {
      if (!this.#templates.includes(template)) throw new ConfigError('TENANTS_NOT_SCOPED', `${template.kind} "${template.name}" is not scoped to tenants: give it to Tenants.create(…).scope(…)`)
      c = template.forTenant(this)
      this.#instances.set(template, c)
    }
    return c as ReturnType<T['forTenant']> & Omit<T, 'forTenant'>
  }

  /** @internal Every scoped component's copy, in the order the templates were given. */
  components(): Component[] {
    return this.#templates.map((t): Component => this.use(t))
  }
}

interface TenantsConfig {
  name: string
  db: Database | undefined
  source: TenantSource
  templates: TenantTemplate[]
  access: TenantAccess
  pollMs: number
  sqlConsole: boolean
}

interface Running {
  tenant: Tenant
  started: Promise<void>
}

/**
 * Schema-per-tenant storage (docs/tenants.md): each tenant's Things, events,
 * handlers and the app's own tables live in a PostgreSQL schema of their
 * own, created and migrated the first time the tenant is used and chosen
 * per transaction, never left on a pooled connection. Requests name their
 * tenant by the host's first label under a domain or by a header. Every
 * instance runs every tenant's components (their cursors and leases keep
 * each event handled once across instances).
 *
 * @example
 * ```ts
 * const things = Things.create('main').noun('Order').build()
 * const $ = Semantic.create('shop').source(things).build()
 * $.on.Order.created(async (e, $) => { await $.do(() => mail(e.data)) })
 * const tenants = Tenants.create('shop').fromHost('api.example.com').fromHeader('x-tenant').scope(things, $).build()
 * await serve({ components: [tenants] })
 * const acme = await tenants.get('acme') // made on first use
 * ```
 */
export class Tenants implements Component {
  readonly kind = 'tenants'
  readonly name: string
  readonly #c: TenantsConfig
  #db: Database | undefined
  #rt: RuntimeContext | undefined
  #log: Logger = stderrLogger
  readonly #running = new Map<string, Running>()
  #timer: NodeJS.Timeout | undefined
  #stopListening: (() => Promise<void>) | undefined
  #stopped = false

  /** @internal Use {@link Tenants.create}. */
  constructor(c: TenantsConfig) {
    this.#c = c
    this.name = c.name
    this.#db = c.db
  }

  /**
   * Starts a builder.
   *
   * @example
   * ```ts
   * Tenants.create('shop').fromHeader('x-tenant').scope(things).build()
   * ```
   */
  static create(name = 'tenants'): TenantsBuilder {
    return new TenantsBuilder(name)
  }

  #database(): Database {
    const db = this.#db ?? this.#rt?.db
    if (!db) throw new ConfigError('TENANTS_NO_DATABASE', `Tenants "${this.name}" has no database yet: give it .db(db) or pass it to serve()`)
    return db
  }

  /**
   * The tenant `name`, made the first time: its schema is created and
   * migrated (OnePipe's and the app's migrations), it is recorded for every
   * instance, and, under `serve()`, its components start in this process.
   *
   * @throws ValidationError `TENANT_INVALID` for a name that is not one (1-30 of `a-z0-9-`)
   * @example
   * ```ts
   * const acme = await tenants.get('acme') // { name: 'acme', schema: 't_acme', db, use(…) }
   * ```
   */
  async get(name: string): Promise<Tenant> {
    checkTenantName(name)
    const running = this.#running.get(name)
    if (running) {
      await running.started
      return running.tenant
    }
    const db = this.#database()
    await db.ready()
    const schema = tenantSchema(db.schema, name)
    const tenantDb = db.withSchema(schema)
    await tenantDb.ready()
    await registerTenant(db, name, schema)
    // Not fatal: the other instances' poll finds the tenant within 5 s. Never silent either.
    await db.notify('onepipe_tenants', name).catch((err: unknown) => this.#log.warn({ err, tenant: name }, 'tenants: could not tell the other instances of a new tenant; their poll finds it within seconds'))
    return this.#start(name, schema, tenantDb)
  }

  /**
   * A tenant that exists (made by any instance), or undefined.
   *
   * @throws ValidationError `TENANT_INVALID` for a name that is not one
   */
  async find(name: string): Promise<Tenant | undefined> {
    checkTenantName(name)
    const running = this.#running.get(name)
    if (running) {
      await running.started
      return running.tenant
    }
    const schema = await tenantRow(this.#database(), name)
    if (schema === undefined) return undefined
    return this.#start(name, schema, this.#database().withSchema(schema))
  }

  /**
   * Every tenant made so far, by any instance.
   *
   * @example
   * ```ts
   * await tenants.list() // [{ name: 'acme', schema: 't_acme', createdAt: Date }]
   * ```
   */
  async list(): Promise<{ name: string; schema: string; createdAt: Date }[]> {
    return allTenants(this.#database())
  }

  /** Starts a tenant's components in this process once (only under serve(); a bare Tenants just hands out handles). */
  async #start(name: string, schema: string, db: Database): Promise<Tenant> {
    const existing = this.#running.get(name)
    if (existing) {
      await existing.started
      return existing.tenant
    }
    const tenant = new Tenant(name, schema, db, this.#c.templates)
    const rt = this.#rt
    const started = (async () => {
      if (!rt || this.#stopped) return
      const trt: RuntimeContext = { ...rt, db, logger: rt.logger.child({ tenant: name }) }
      for (const c of tenant.components()) await c.attach?.(trt)
    })()
    this.#running.set(name, { tenant, started })
    try {
      await started
    } catch (e) {
      this.#running.delete(name)
      throw e
    }
    return tenant
  }

  /**
   * The tenant a request names (host label or header), checked: it must
   * exist and `user` may act in it (`.access(fn)`).
   *
   * @throws ValidationError `TENANT_INVALID` (400) for a bad name; ValidationError `TENANT_REQUIRED` (400)
   *   when the request names none; NotFoundError `TENANT_NOT_FOUND` (404) for a tenant never made;
   *   AuthError `FORBIDDEN` (403) when `user` may not act in it
   * @example
   * ```ts
   * const t = await tenants.fromRequest(c.req.raw, c.get('user'))
   * ```
   */
  async fromRequest(request: Request, user: AuthUser | undefined): Promise<Tenant> {
    const name = tenantOf(request, this.#c.source)
    if (name === undefined) {
      const how = [this.#c.source.domain ? `a host under ${this.#c.source.domain}` : '', this.#c.source.header ? `the ${this.#c.source.header} header` : ''].filter(Boolean).join(' or ')
      throw new ValidationError('tenant', [{ path: 'tenant', message: how === '' ? 'these Tenants take no tenant from requests (configure fromHost or fromHeader)' : `the request names no tenant: send it to ${how}` }], { code: 'TENANT_REQUIRED' })
    }
    // Access first: who may not enter a tenant does not learn whether it exists.
    if (!(await this.#c.access(user, name))) throw new AuthError('FORBIDDEN', `You may not act in tenant "${name}"`, { details: { tenant: name } })
    const t = await this.find(name)
    if (!t) throw new NotFoundError('TENANT_NOT_FOUND', `No tenant "${name}"; an operator makes it (tenants.get("${name}") in the app)`, { tenant: name })
    return t
  }

  /** Starts every tenant already made, then follows the ones other instances make (called by serve()). */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#rt = rt
    this.#db ??= rt.db
    this.#stopped = false
    this.#log = rt.logger.child({ tenants: this.name })
    const db = this.#database()
    await db.ready()
    await this.#sync()
    this.#stopListening = await db.listen('onepipe_tenants', () => void this.#sync(), { onReconnect: () => void this.#sync() })
    // A notification can be lost; the poll catches up.
    this.#timer = setInterval(() => void this.#sync(), this.#c.pollMs)
    this.#timer.unref()
  }

  async #sync(): Promise<void> {
    if (this.#stopped) return
    try {
      const db = this.#database()
      for (const t of await allTenants(db)) if (!this.#running.has(t.name)) await this.#start(t.name, t.schema, db.withSchema(t.schema))
    } catch (err) {
      if (!this.#stopped) this.#log.error({ err }, 'tenants: could not start the tenants made so far; retrying at the next poll')
    }
  }

  /**
   * With `.sqlConsole()`: mounts `POST /__onepipe/tenant/sql`, the read-only
   * SQL console of the tenant the request names, confined to its schema
   * (docs/sql-console.md); the caller must be an operator and may act in the
   * tenant (called by serve(), behind its guard).
   */
  routes(app: unknown, rt: RuntimeContext): void {
    if (!this.#c.sqlConsole) return
    mountSqlConsoleRoutes(app as Hono, {
      db: this.#db ?? rt.db,
      logger: rt.logger ?? stderrLogger,
      path: '/__onepipe/tenant/sql',
      permission: 'onepipe:write',
      target: async (c) => ({ db: (await this.fromRequest(c.req.raw, c.get('user' as never) as AuthUser | undefined)).db, confine: true }),
    })
  }

  /** Stops every tenant's components, newest component first (called by serve()). */
  async detach(): Promise<void> {
    this.#stopped = true
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
    await this.#stopListening?.()
    this.#stopListening = undefined
    const all = [...this.#running.values()]
    // A tenant that failed to start was reported by its starter; every one still gets its stop.
    await Promise.allSettled(all.map((r) => r.started))
    const stops = await Promise.allSettled(
      all.map(async (r) => {
        for (const c of r.tenant.components().reverse()) await c.detach?.()
        await r.tenant.db.close()
      }),
    )
    stops.forEach((s, i) => {
      if (s.status === 'rejected') this.#log.error({ err: s.reason as unknown, tenant: all[i]?.tenant.name }, 'tenants: a tenant did not stop cleanly')
    })
    this.#running.clear()
    this.#rt = undefined
  }
}

/**
 * Fluent configuration of {@link Tenants}.
 *
 * @example
 * ```ts
 * Tenants.create('shop').fromHost('api.example.com').scope(things, $).access((user, t) => user?.org === t).build()
 * ```
 */
export class TenantsBuilder {
  readonly #c: TenantsConfig

  constructor(name: string) {
    if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(name)) throw new ConfigError('TENANTS_BAD_NAME', `Tenants name ${JSON.stringify(name)} is invalid: a letter, then letters, digits, "_" or "-"`)
    this.#c = { name, db: undefined, source: {}, templates: [], access: defaultTenantAccess, pollMs: 5000, sqlConsole: false }
  }

  /** The database whose schemas hold the tenants (default: the app's, under serve()). @example `.db(db)` */
  db(db: Database): this {
    this.#c.db = assertDatabase(db, `Tenants "${this.#c.name}"`)
    return this
  }

  /**
   * Requests name their tenant by the host's first label under `domain`:
   * `acme.api.example.com` → `acme` under `api.example.com`.
   *
   * @throws ConfigError `TENANTS_BAD_DOMAIN`
   * @example `.fromHost('api.example.com')`
   */
  fromHost(domain: string): this {
    this.#c.source = { ...this.#c.source, domain: checkDomain(domain) }
    return this
  }

  /**
   * Requests name their tenant in a header (checked before the host).
   *
   * @throws ConfigError `TENANTS_BAD_HEADER`
   * @example `.fromHeader('x-tenant')`
   */
  fromHeader(name: string): this {
    if (typeof name !== 'string' || !/^[A-Za-z0-9-]{1,64}$/.test(name)) throw new ConfigError('TENANTS_BAD_HEADER', `Tenant header ${JSON.stringify(name)} is not a header name`)
    this.#c.source = { ...this.#c.source, header: name.toLowerCase() }
    return this
  }

  /**
   * The components each tenant gets its own copy of (Things, Semantic), in
   * the order they start.
   *
   * @throws ConfigError `TENANTS_NOT_SCOPABLE` for a component without `forTenant`
   * @example `.scope(things, $)`
   */
  scope(...templates: TenantTemplate[]): this {
    for (const t of templates) {
      if (typeof (t as Partial<TenantTemplate>)?.forTenant !== 'function') throw new ConfigError('TENANTS_NOT_SCOPABLE', `${String((t as Partial<TenantTemplate>)?.kind)} "${String((t as Partial<TenantTemplate>)?.name)}" cannot be scoped to tenants (it has no forTenant)`)
      if (!this.#c.templates.includes(t)) this.#c.templates.push(t)
    }
    return this
  }

  /**
   * Who may act in a tenant over HTTP and RPC (default
   * {@link defaultTenantAccess}: admins everywhere, others where `user.tenant`
   * or `user.tenants` names it).
   *
   * @example `.access((user, tenant) => user?.org === tenant)`
   */
  access(fn: TenantAccess): this {
    if (typeof fn !== 'function') throw new ConfigError('TENANTS_BAD_ACCESS', 'access() needs a function (user, tenant) => boolean')
    this.#c.access = fn
    return this
  }

  /**
   * Serves each tenant's read-only SQL console at `POST /__onepipe/tenant/sql`
   * (off by default): one SELECT, in the tenant's schema only (other
   * schemas, system catalogs and server-state functions refused), for
   * operators who may act in the tenant.
   *
   * @example `.sqlConsole()`
   */
  sqlConsole(on = true): this {
    this.#c.sqlConsole = on
    return this
  }

  /** Builds the Tenants and records them in the manifest. */
  build(): Tenants {
    const c: TenantsConfig = { ...this.#c, templates: [...this.#c.templates] }
    registerPrimitive({ primitive: 'tenants', name: c.name, infrastructure: ['postgresql'], config: { domain: c.source.domain ?? null, header: c.source.header ?? null, scoped: c.templates.map((t) => `${t.kind}:${t.name}`) } })
    return new Tenants(c)
  }
}
