import { randomUUID } from 'node:crypto'
import { checkText, ConfigError, ConflictError, NotFoundError, ValidationError, type Database, type Logger, type Queryable } from '@onepipe/core'
import { newApiKey } from './apikeys.js'
import { checkEmail, checkPassword, hashPassword } from './passwords.js'
import type { RoleMap } from './roles.js'
import * as sql from './sql.js'
import { DEV_ADMIN_EMAIL, devAdminFile, newDevAdminPassword } from './dev-admin.js'
import type { Change } from './status.js'

/** A person's account as OnePipe answers it (never the password hash). Times are ISO 8601 strings. */
export interface Account {
  id: string
  email: string
  roles: string[]
  disabled: boolean
  createdAt: string
  lastLoginAt: string | null
}

/** An application that calls the app with API keys. */
export interface Application {
  id: string
  name: string
  disabled: boolean
  createdAt: string
}

/** An API key as listed: its visible prefix, never the key or its hash. */
export interface ApiKeyInfo {
  id: string
  applicationId: string
  name: string
  /** The `op_<prefix>_` part, to recognise a key in a config file. */
  prefix: string
  roles: string[]
  disabled: boolean
  createdAt: string
  lastUsedAt: string | null
  /** When a key replaced with an overlap stops working; null otherwise. */
  expiresAt: string | null
  /** The key that replaced it by rotation. */
  replacedBy: string | null
}

/** A new key: the key itself (shown this once, stored nowhere) and its listing. */
export interface CreatedApiKey {
  key: string
  apiKey: ApiKeyInfo
}

const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null)
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Whether `id` can be an id (so a bad one is a 404, not a database error). */
export function isId(id: unknown): id is string {
  return typeof id === 'string' && UUID.test(id)
}

export function toAccount(r: sql.UserRow): Account {
  return { id: r.id, email: r.email, roles: r.roles, disabled: r.disabled_at !== null, createdAt: iso(r.created_at) ?? '', lastLoginAt: iso(r.last_login_at) }
}

function toApplication(r: sql.ApplicationRow): Application {
  return { id: r.id, name: r.name, disabled: r.disabled_at !== null, createdAt: iso(r.created_at) ?? '' }
}

function toKeyInfo(r: sql.ApiKeyRow): ApiKeyInfo {
  return {
    id: r.id,
    applicationId: r.application_id,
    name: r.name,
    prefix: `op_${r.prefix}_`,
    roles: r.roles,
    disabled: r.disabled_at !== null,
    createdAt: iso(r.created_at) ?? '',
    lastUsedAt: iso(r.last_used_at),
    expiresAt: iso(r.expires_at),
    replacedBy: r.replaced_by,
  }
}

/** What account management needs from its Auth. */
export interface AccountsDeps {
  db(): Database
  roles: RoleMap
  /** Announces a change to every instance with the transaction `tx`, and applies it here at once. */
  announce(tx: Queryable, change: Change): Promise<void>
  /** Called once the transaction that announced changes has committed. */
  applied(changes: Change[]): void
}

const missingUser = (id: string) => new NotFoundError('USER_NOT_FOUND', `No user "${id}"`)
const missingApp = (id: string) => new NotFoundError('APPLICATION_NOT_FOUND', `No application "${id}"`)
const missingKey = (id: string) => new NotFoundError('API_KEY_NOT_FOUND', `No API key "${id}"`)

/**
 * People's accounts: `auth.users`.
 *
 * @example
 * ```ts
 * const ada = await auth.users.create({ email: 'ada@example.com', password: 'correct horse battery', roles: ['operator'] })
 * await auth.users.setRoles(ada.id, ['viewer'])
 * await auth.users.disable(ada.id) // her sessions end at once, on every instance
 * ```
 */
export class Users {
  readonly #d: AccountsDeps
  constructor(d: AccountsDeps) {
    this.#d = d
  }

  /**
   * Creates an account. The password is hashed with argon2id; only the hash is stored.
   *
   * @throws ValidationError for a bad email, a password outside 12-1024 characters, an unknown role;
   *   ConflictError `EMAIL_TAKEN` (409) when the email has an account, whatever its case
   */
  async create(input: { email: string; password: string; roles?: string[] }): Promise<Account> {
    const email = checkEmail(input.email)
    const password = checkPassword(input.password)
    const roles = this.#d.roles.check(input.roles ?? [])
    const row = await sql.insertUser(this.#d.db(), { id: randomUUID(), email, passwordHash: await hashPassword(password), roles })
    if (!row) throw new ConflictError('EMAIL_TAKEN', 'An account with this email exists already')
    return toAccount(row)
  }

  /** @throws NotFoundError `USER_NOT_FOUND` */
  async get(id: string): Promise<Account> {
    const row = isId(id) ? await sql.userById(this.#d.db(), id) : undefined
    if (!row) throw missingUser(id)
    return toAccount(row)
  }

  /** Accounts by email, `limit` (default 100, at most 1000) after the email `after`. */
  async list(o: { limit?: number; after?: string } = {}): Promise<Account[]> {
    const limit = o.limit ?? 100
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new ValidationError('query', [{ path: 'limit', message: 'must be a whole number from 1 to 1000' }])
    return (await sql.listUsers(this.#d.db(), { limit, after: o.after })).map(toAccount)
  }

  /** Disables an account and ends all its sessions; its tokens stop working at once on every instance. @throws NotFoundError */
  async disable(id: string): Promise<Account> {
    return this.#change(id, async (tx) => {
      const row = await sql.setUserDisabled(tx, id, true)
      if (row) await sql.revokeUserSessions(tx, id, 'disabled')
      return row
    })
  }

  /** Enables a disabled account (its old sessions stay ended). @throws NotFoundError */
  async enable(id: string): Promise<Account> {
    return this.#change(id, (tx) => sql.setUserDisabled(tx, id, false))
  }

  /** Replaces an account's roles; effective at once on every instance. @throws ValidationError for an unknown role, NotFoundError */
  async setRoles(id: string, roles: string[]): Promise<Account> {
    const checked = this.#d.roles.check(roles)
    return this.#change(id, (tx) => sql.setUserRoles(tx, id, checked))
  }

  /** Sets a new password and ends every session of the account. @throws ValidationError, NotFoundError */
  async setPassword(id: string, password: string): Promise<void> {
    const hash = await hashPassword(checkPassword(password))
    await this.#change(id, async (tx) => {
      if (!(await sql.setPasswordHash(tx, id, hash))) return undefined
      await sql.revokeUserSessions(tx, id, 'password')
      return sql.userById(tx, id)
    })
  }

  async #change(id: string, fn: (tx: Queryable) => Promise<sql.UserRow | undefined>): Promise<Account> {
    if (!isId(id)) throw missingUser(id)
    const change: Change = { kind: 'u', id }
    const row = await this.#d.db().transaction(async (tx) => {
      const r = await fn(tx)
      if (r) await this.#d.announce(tx, change)
      return r
    })
    if (!row) throw missingUser(id)
    this.#d.applied([change])
    return toAccount(row)
  }
}

/**
 * Applications: `auth.applications`.
 *
 * @example
 * ```ts
 * const billing = await auth.applications.create({ name: 'billing-worker' })
 * ```
 */
export class Applications {
  readonly #d: AccountsDeps
  constructor(d: AccountsDeps) {
    this.#d = d
  }

  /** @throws ValidationError for a name that is not 1-200 characters */
  async create(input: { name: string }): Promise<Application> {
    const name = notBlank(checkText(input.name, { subject: 'application', path: 'name', max: 200 }), 'application')
    return toApplication(await sql.insertApplication(this.#d.db(), { id: randomUUID(), name }))
  }

  /** @throws NotFoundError `APPLICATION_NOT_FOUND` */
  async get(id: string): Promise<Application> {
    const row = isId(id) ? await sql.applicationById(this.#d.db(), id) : undefined
    if (!row) throw missingApp(id)
    return toApplication(row)
  }

  /** Every application, oldest first; `only` narrows it to one (what an application's own key may see). */
  async list(o: { only?: string } = {}): Promise<Application[]> {
    if (o.only !== undefined && !isId(o.only)) return []
    return (await sql.listApplications(this.#d.db(), o.only)).map(toApplication)
  }
}

/**
 * API keys: `auth.apiKeys`. A key is `op_<prefix>_<secret>`, shown once at
 * creation; only its SHA-256 and prefix are stored.
 *
 * @example
 * ```ts
 * const { key } = await auth.apiKeys.create(billing.id, { name: 'prod', roles: ['operator'] })
 * // give `key` to the program; it sends X-API-Key: op_…
 * const next = await auth.apiKeys.rotate(keyId, { overlap: '1h' })
 * ```
 */
export class ApiKeys {
  readonly #d: AccountsDeps
  constructor(d: AccountsDeps) {
    this.#d = d
  }

  /** @throws ValidationError for a bad name or an unknown role, NotFoundError `APPLICATION_NOT_FOUND` */
  async create(applicationId: string, input: { name: string; roles?: string[] }): Promise<CreatedApiKey> {
    const name = notBlank(checkText(input.name, { subject: 'API key', path: 'name', max: 200 }), 'API key')
    const roles = this.#d.roles.check(input.roles ?? [])
    if (!isId(applicationId) || !(await sql.applicationById(this.#d.db(), applicationId))) throw missingApp(applicationId)
    return this.#insert(this.#d.db(), applicationId, name, roles)
  }

  async #insert(q: Queryable, applicationId: string, name: string, roles: string[]): Promise<CreatedApiKey> {
    // 40 random bits of prefix: a collision is rare, and simply means drawing again.
    for (;;) {
      const k = newApiKey()
      const row = await sql.insertApiKey(q, { id: randomUUID(), applicationId, name, prefix: k.prefix, hash: k.hash, roles })
      if (row) return { key: k.key, apiKey: toKeyInfo(row) }
    }
  }

  /** @throws NotFoundError `API_KEY_NOT_FOUND` */
  async get(id: string): Promise<ApiKeyInfo> {
    const row = isId(id) ? await sql.apiKeyById(this.#d.db(), id) : undefined
    if (!row) throw missingKey(id)
    return toKeyInfo(row)
  }

  /** The keys of an application, oldest first. */
  async list(applicationId: string): Promise<ApiKeyInfo[]> {
    if (!isId(applicationId)) throw missingApp(applicationId)
    return (await sql.listApiKeys(this.#d.db(), applicationId)).map(toKeyInfo)
  }

  /** Disables a key; it stops working at once on every instance. @throws NotFoundError */
  async disable(id: string): Promise<ApiKeyInfo> {
    if (!isId(id)) throw missingKey(id)
    let change: Change | undefined
    const row = await this.#d.db().transaction(async (tx) => {
      const r = await sql.disableApiKey(tx, id)
      if (r) await this.#d.announce(tx, (change = { kind: 'k', id: r.prefix }))
      return r
    })
    if (!row) throw missingKey(id)
    if (change) this.#d.applied([change])
    return toKeyInfo(row)
  }

  /**
   * Replaces a key with a new one (same application, name and roles). The
   * old key stops at once by default; with `overlap` (at most 24 h) it keeps
   * working that long, so a fleet can switch without a failed request.
   *
   * @throws NotFoundError, ConflictError `API_KEY_DISABLED` for a disabled key
   */
  async rotate(id: string, o: { overlapMs?: number } = {}): Promise<CreatedApiKey> {
    const overlapMs = o.overlapMs ?? 0
    if (!Number.isFinite(overlapMs) || overlapMs < 0 || overlapMs > 86_400_000) throw new ValidationError('rotation', [{ path: 'overlap', message: 'must be from 0 to 24 hours' }])
    if (!isId(id)) throw missingKey(id)
    let change: Change | undefined
    const created = await this.#d.db().transaction(async (tx) => {
      const old = await sql.apiKeyById(tx, id)
      if (!old) throw missingKey(id)
      if (old.disabled_at !== null || old.replaced_by !== null) throw new ConflictError('API_KEY_DISABLED', `API key "${id}" is disabled or was rotated already; rotate the key that replaced it`)
      const next = await this.#insert(tx, old.application_id, old.name, old.roles)
      await sql.retireApiKey(tx, id, next.apiKey.id, overlapMs)
      await this.#d.announce(tx, (change = { kind: 'k', id: old.prefix }))
      return next
    })
    if (change) this.#d.applied([change])
    return created
  }
}

/** A name of spaces only would show as nothing in a list: refused like an empty one. */
function notBlank(name: string, subject: string): string {
  if (name.trim() === '') throw new ValidationError(subject, [{ path: 'name', message: 'must hold more than spaces' }])
  return name
}

/**
 * What {@link Auth.ready} does last: creates the first admin from
 * `ONEPIPE_ADMIN_EMAIL` + `ONEPIPE_ADMIN_PASSWORD` (`env`, as read when the
 * app started) if no account has that email, never overwriting one. With
 * neither set: on the embedded default outside production, when there is no
 * account at all, a development admin (`admin@localhost`, a random password
 * kept in `.onepipe/dev-admin.txt`, see {@link devAdminFile}); in
 * production, a warning when there is no account.
 *
 * @throws ConfigError `AUTH_ADMIN_INCOMPLETE`, `AUTH_ADMIN_INVALID`
 */
export async function createFirstAdmin(users: Users, auth: { readonly name: string; readonly log: Logger; database(): Database }, env: Record<string, string | undefined>): Promise<void> {
  const email = env.ONEPIPE_ADMIN_EMAIL
  const password = env.ONEPIPE_ADMIN_PASSWORD
  if (!email && !password) {
    const production = env.NODE_ENV === 'production'
    const file = production ? undefined : devAdminFile(auth.database())
    if ((production || file) && (await sql.countUsers(auth.database())) === 0) {
      if (production) auth.log.warn({ auth: auth.name }, 'auth: there is no account yet; set ONEPIPE_ADMIN_EMAIL and ONEPIPE_ADMIN_PASSWORD to create the first admin')
      else if (file) {
        await users.create({ email: DEV_ADMIN_EMAIL, password: newDevAdminPassword(file), roles: ['admin'] })
        auth.log.info({ auth: auth.name, file }, `auth: created the development admin ${DEV_ADMIN_EMAIL}; its password is in ${file}`)
      }
    }
    return
  }
  if (!email || !password) throw new ConfigError('AUTH_ADMIN_INCOMPLETE', `${email ? 'ONEPIPE_ADMIN_PASSWORD' : 'ONEPIPE_ADMIN_EMAIL'} is not set; the first admin needs both ONEPIPE_ADMIN_EMAIL and ONEPIPE_ADMIN_PASSWORD`)
  try {
    await users.create({ email, password, roles: ['admin'] })
    auth.log.info({ auth: auth.name }, 'auth: created the first admin from ONEPIPE_ADMIN_EMAIL')
  } catch (e) {
    if ((e as { code?: unknown }).code === 'EMAIL_TAKEN') return
    if (e instanceof ValidationError) {
      throw new ConfigError('AUTH_ADMIN_INVALID', `ONEPIPE_ADMIN_EMAIL or ONEPIPE_ADMIN_PASSWORD is not valid: ${e.issues.map((i) => `${i.path} ${i.message}`).join('; ')}`)
    }
    throw e
  }
}
