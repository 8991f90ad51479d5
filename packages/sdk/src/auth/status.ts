import type { Database, Logger } from '@onepipe/core'
import type { RoleMap } from './roles.js'
import { apiKeyStatus, sessionStatus } from './sql.js'

/** The NOTIFY channel Auth announces revocations and changes on (scoped to the database's schema). */
export const AUTH_NOTIFY = 'onepipe_auth'

/** How long a status read from the database is trusted without a notification: the bound if one is ever lost. */
export const STATUS_TTL_MS = 30_000
const MAX_ENTRIES = 50_000
const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** What an access token's session stands for right now. */
export interface SessionState {
  revoked: boolean
  userId: string
  disabled: boolean
  email: string
  roles: string[]
  permissions: string[]
}

/** What an API key stands for right now. */
export interface KeyState {
  id: string
  applicationId: string
  hash: string
  roles: string[]
  permissions: string[]
  usable: boolean
  /** Local clock time its overlap ends, if it does. */
  expiresAtMs: number | null
}

/** A change announced to every instance: a session, a user (all their sessions), a key (by prefix), anything (`*`). */
export type Change = { kind: 's' | 'u' | 'k'; id: string } | { kind: '*' }

/** The payload of a {@link Change}. */
export function changePayload(c: Change): string {
  return c.kind === '*' ? '*' : `${c.kind}:${c.id}`
}

interface Entry<T> {
  value: T
  at: number
}

/**
 * What sessions, users and API keys stand for, kept in memory so an
 * authenticated request costs no query in the common case, and forgotten
 * the moment any instance changes them: every revocation, disabling, role
 * change or key change is a NOTIFY (sent with its transaction), and a lost
 * LISTEN connection clears everything, since notifications sent in the gap
 * are gone. Entries are trusted for {@link STATUS_TTL_MS} at most.
 *
 * A read that started before a notification is used for its own request
 * but not kept, so a slow read can never put back a state that a
 * revocation has just replaced. Until the LISTEN is up nothing is kept.
 */
export class StatusCache {
  readonly #db: Database
  readonly #roles: RoleMap
  readonly #log: Logger
  readonly #sessions = new Map<string, Entry<SessionState>>()
  readonly #keys = new Map<string, Entry<KeyState>>()
  readonly #loading = new Map<string, Promise<unknown>>()
  /** Bumped by every change heard: a read that saw another epoch is not kept. */
  #epoch = 0
  #listening: Promise<() => Promise<void>> | undefined
  #live = false
  #retryAt = 0

  constructor(db: Database, roles: RoleMap, logger: Logger) {
    this.#db = db
    this.#roles = roles
    this.#log = logger
  }

  /** Starts listening (once; after a failure, again at most every 5 s). */
  async start(): Promise<void> {
    if (this.#listening || Date.now() < this.#retryAt) return
    this.#listening = this.#db.listen(AUTH_NOTIFY, (p) => this.#heard(p), {
      onReconnect: () => {
        this.#log.warn({}, 'auth: the LISTEN connection came back; forgetting every cached session and key status')
        this.#forgetAll()
      },
    })
    try {
      await this.#listening
      this.#live = true
    } catch (e) {
      this.#listening = undefined
      this.#retryAt = Date.now() + 5000
      this.#log.warn({ err: e }, 'auth: cannot LISTEN for revocations; every request reads its status from the database until it can')
    }
  }

  async stop(): Promise<void> {
    const l = this.#listening
    this.#listening = undefined
    this.#live = false
    this.#forgetAll()
    if (l) await (await l.catch(() => async () => {}))()
  }

  #forgetAll(): void {
    this.#epoch++
    this.#sessions.clear()
    this.#keys.clear()
  }

  #heard(payload: string): void {
    this.apply(payload === '*' ? { kind: '*' } : { kind: payload.slice(0, 1) as 's' | 'u' | 'k', id: payload.slice(2) })
  }

  /** Applies a change locally (what this instance just did, or what another announced). */
  apply(c: Change): void {
    this.#epoch++
    if (c.kind === '*') return this.#forgetAll()
    if (c.kind === 's') this.#sessions.delete(c.id)
    else if (c.kind === 'k') this.#keys.delete(c.id)
    else for (const [sid, e] of this.#sessions) if (e.value.userId === c.id) this.#sessions.delete(sid)
  }

  #keep<T>(map: Map<string, Entry<T>>, key: string, value: T, epoch: number): void {
    if (!this.#live || epoch !== this.#epoch) return
    if (map.size >= MAX_ENTRIES) map.delete(map.keys().next().value as string)
    map.set(key, { value, at: Date.now() })
  }

  #fresh<T>(map: Map<string, Entry<T>>, key: string): T | undefined {
    const e = map.get(key)
    if (!e) return undefined
    if (Date.now() - e.at < STATUS_TTL_MS) return e.value
    map.delete(key)
    return undefined
  }

  /** The state of session `sid`; undefined when there is no such session (swept, or never issued here). */
  /** The state of session `sid` if it is in memory and fresh; undefined otherwise (then ask {@link session}). */
  peekSession(sid: string): SessionState | undefined {
    return this.#fresh(this.#sessions, sid)
  }

  /**
   * One lookup in flight per id: a burst of requests with one new key or
   * token (200 workers parking their pulls at once) makes one query and
   * holds one connection, not one each.
   */
  #once<T>(key: string, load: () => Promise<T>): Promise<T> {
    const running = this.#loading.get(key) as Promise<T> | undefined
    if (running) return running
    const p = load().finally(() => this.#loading.delete(key))
    this.#loading.set(key, p)
    return p
  }

  session(sid: string): Promise<SessionState | undefined> {
    const hit = this.#fresh(this.#sessions, sid)
    if (hit) return Promise.resolve(hit)
    return this.#once(`s:${sid}`, () => this.#loadSession(sid))
  }

  async #loadSession(sid: string): Promise<SessionState | undefined> {
    // A session id is a UUID; anything else (a token signed with the key but made elsewhere) is no
    // session, answered TOKEN_REVOKED, not a 400 quoting PostgreSQL's uuid error and a warning per request.
    if (!SESSION_ID.test(sid)) return undefined
    if (!this.#live) await this.start()
    const epoch = this.#epoch
    const row = await sessionStatus(this.#db, sid)
    if (!row) return undefined
    const value: SessionState = { revoked: row.revoked, userId: row.user_id, disabled: row.disabled, email: row.email, roles: row.roles, permissions: this.#roles.permissionsOf(row.roles) }
    this.#keep(this.#sessions, sid, value, epoch)
    return value
  }

  /** The state of the API key with `prefix`; undefined when there is none. */
  apiKey(prefix: string): Promise<KeyState | undefined> {
    const hit = this.#fresh(this.#keys, prefix)
    if (hit) return Promise.resolve(hit)
    return this.#once(`k:${prefix}`, () => this.#loadKey(prefix))
  }

  async #loadKey(prefix: string): Promise<KeyState | undefined> {
    if (!this.#live) await this.start()
    const epoch = this.#epoch
    const row = await apiKeyStatus(this.#db, prefix)
    if (!row) return undefined
    const value: KeyState = {
      id: row.id,
      applicationId: row.application_id,
      hash: row.key_hash,
      roles: row.roles,
      permissions: this.#roles.permissionsOf(row.roles),
      usable: row.usable,
      expiresAtMs: row.expires_in_ms === null ? null : Date.now() + row.expires_in_ms,
    }
    this.#keep(this.#keys, prefix, value, epoch)
    return value
  }
}
