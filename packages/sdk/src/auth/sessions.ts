import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto'
import { ValidationError, type Queryable } from '@onepipe/core'
import { AuthError } from './errors.js'
import { hashPassword, needsRehash, verifyDummy, verifyPassword } from './passwords.js'
import * as sql from './sql.js'
import type { AuthState } from './state.js'
import type { Change } from './status.js'
import type { IssuedSession } from './types.js'

const REFRESH_FORMAT = /^[A-Za-z0-9_-]{43}$/
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')

/** How a refresh ended inside its transaction: answered, or refused with what was committed (a revocation) kept. */
type RefreshOutcome =
  | { kind: 'issued'; session: sql.SessionRow; prev: string; usedSec: number }
  | { kind: 'refused'; code: 'TOKEN_INVALID' | 'TOKEN_EXPIRED' | 'TOKEN_REVOKED' | 'ACCOUNT_DISABLED'; message: string; reused?: sql.SessionRow }

/**
 * @internal An Auth's sessions (`Auth.login`, `refresh`, `logout`): a login
 * starts one with a refresh token, each refresh rotates that token (a spent
 * one reused after the reuse interval revokes the session), a logout ends it.
 */
export class Sessions {
  readonly #s: AuthState
  readonly #ready: () => Promise<void>

  /** `ready` is the Auth's own, awaited before each operation touches the database. */
  constructor(state: AuthState, ready: () => Promise<void>) {
    this.#s = state
    this.#ready = ready
  }

  /** Logs a person in (see `Auth.login`). */
  async login(email: string, password: string, o: { address?: string } = {}): Promise<IssuedSession> {
    if (typeof email !== 'string' || email.length === 0 || email.length > 254) throw new ValidationError('login', [{ path: 'email', message: 'must be an email address' }])
    if (typeof password !== 'string' || password.length === 0 || password.length > 1024) throw new ValidationError('login', [{ path: 'password', message: 'must be a string of 1-1024 characters' }])
    await this.#ready()
    const address = o.address ?? 'unknown'
    await this.#s.throttler().attempt(email, address)
    const db = this.#s.database()
    const row = await sql.credentialsByEmail(db, email)
    if (!row) {
      await verifyDummy(password)
      throw new AuthError('INVALID_CREDENTIALS', 'The email or the password is wrong')
    }
    if (!(await verifyPassword(row.password_hash, password))) throw new AuthError('INVALID_CREDENTIALS', 'The email or the password is wrong')
    await this.#s.throttler().succeeded(email, address)
    if (row.disabled_at !== null) throw new AuthError('ACCOUNT_DISABLED', 'The account is disabled')
    if (needsRehash(row.password_hash)) await sql.setPasswordHash(db, row.id, await hashPassword(password))
    const sid = randomUUID()
    const refreshToken = randomBytes(32).toString('base64url')
    await sql.startSession(db, { id: sid, userId: row.id, tokenHash: sha256(refreshToken), ttlMs: this.#s.c.refreshTtlMs })
    const { token } = await this.#s.tokens.sign({ sub: row.id, sid, roles: row.roles })
    return this.#issued(token, refreshToken, sid, { id: row.id, email: row.email, roles: row.roles })
  }

  #issued(accessToken: string, refreshToken: string, sid: string, u: { id: string; email: string; roles: string[] }): IssuedSession {
    return {
      user: { id: u.id, kind: 'user', email: u.email, roles: u.roles, permissions: this.#s.roleMap.permissionsOf(u.roles), sessionId: sid },
      accessToken,
      refreshToken,
      tokenType: 'Bearer',
      expiresIn: this.#s.tokens.ttlSec,
      refreshExpiresIn: Math.round(this.#s.c.refreshTtlMs / 1000),
      sessionId: sid,
    }
  }

  /** The refresh token that follows `token`: derived, so a repeat within the reuse interval gets it again with nothing stored in plain. */
  #successorOf(token: string): string {
    return createHmac('sha256', this.#s.keys.successor).update(`next:${token}`).digest('base64url')
  }

  #jtiOf(token: string): string {
    return createHmac('sha256', this.#s.keys.successor).update(`jti:${token}`).digest('base64url').slice(0, 22)
  }

  /** Exchanges a refresh token for a new pair, spending it (see `Auth.refresh`). */
  async refresh(refreshToken: string): Promise<IssuedSession> {
    if (typeof refreshToken !== 'string' || !REFRESH_FORMAT.test(refreshToken)) throw new AuthError('TOKEN_INVALID', 'The refresh token is malformed')
    await this.#ready()
    const out = await this.#s.database().transaction((tx) => this.#rotate(tx, refreshToken))
    if (out.kind === 'refused') {
      if (out.reused) {
        this.#s.statusCache().apply({ kind: 's', id: out.reused.id })
        this.#s.log.warn({ auth: this.#s.name, sessionId: out.reused.id, userId: out.reused.user_id }, 'auth: a spent refresh token was presented after the reuse interval; the session was revoked')
      }
      throw new AuthError(out.code, out.message)
    }
    const { session: s, prev, usedSec } = out
    const next = this.#successorOf(prev)
    const { token } = await this.#s.tokens.sign({ sub: s.user_id, sid: s.id, roles: s.roles, iat: usedSec, jti: this.#jtiOf(prev) })
    return this.#issued(token, next, s.id, { id: s.user_id, email: s.email, roles: s.roles })
  }

  async #rotate(tx: Queryable, presented: string): Promise<RefreshOutcome> {
    const hash = sha256(presented)
    const s = await sql.lockSessionOfToken(tx, hash)
    const t = s ? await sql.readToken(tx, hash, this.#s.c.reuseMs) : undefined
    if (!s || !t) return { kind: 'refused', code: 'TOKEN_INVALID', message: 'The refresh token is not known; log in again' }
    if (s.disabled) return { kind: 'refused', code: 'ACCOUNT_DISABLED', message: 'The account is disabled' }
    if (s.revoked) return { kind: 'refused', code: 'TOKEN_REVOKED', message: 'The session has ended; log in again' }
    if (!t.used) {
      if (t.expired) return { kind: 'refused', code: 'TOKEN_EXPIRED', message: 'The refresh token has expired; log in again' }
      const usedSec = await sql.rotateToken(tx, { tokenHash: hash, successorHash: sha256(this.#successorOf(presented)), ttlMs: this.#s.c.refreshTtlMs })
      if (usedSec === undefined) return { kind: 'refused', code: 'TOKEN_INVALID', message: 'The refresh token could not be rotated; log in again' }
      return { kind: 'issued', session: s, prev: presented, usedSec }
    }
    if (t.within_reuse && t.used_sec !== null) return this.#latest(tx, s, presented, t.used_sec)
    await sql.revokeSession(tx, s.id, 'reuse')
    await this.#s.announce(tx, { kind: 's', id: s.id })
    return { kind: 'refused', code: 'TOKEN_REVOKED', message: 'This refresh token was used already; the session was ended to protect the account. Log in again', reused: s }
  }

  /**
   * The pair a spent token was exchanged for, followed down the chain to
   * the newest one, so a second tab that repeats an old token ends up with
   * the token the first tab already moved on to, not a spent one.
   */
  async #latest(tx: Queryable, s: sql.SessionRow, spent: string, usedSec: number): Promise<RefreshOutcome> {
    let prev = spent
    let sec = usedSec
    for (let hop = 0; hop < 16; hop++) {
      const next = this.#successorOf(prev)
      const t = await sql.readToken(tx, sha256(next), this.#s.c.reuseMs)
      if (!t || t.session_id !== s.id) return { kind: 'refused', code: 'TOKEN_INVALID', message: 'The refresh token is not known; log in again' }
      if (!t.used || t.used_sec === null) return { kind: 'issued', session: s, prev, usedSec: sec }
      prev = next
      sec = t.used_sec
    }
    return { kind: 'refused', code: 'TOKEN_INVALID', message: 'The refresh token is too old; log in again' }
  }

  /** The session a refresh token belongs to, undefined when it is malformed or not known. */
  async sessionOfRefresh(refreshToken: string): Promise<string | undefined> {
    if (!REFRESH_FORMAT.test(refreshToken)) return undefined
    return sql.sessionOfToken(this.#s.database(), sha256(refreshToken))
  }

  /** Ends a session, or every session of a user (see `Auth.logout`). */
  async logout(o: { sessionId: string } | { refreshToken: string } | { userId: string; all: true }): Promise<void> {
    await this.#ready()
    const db = this.#s.database()
    let change: Change
    if ('userId' in o) change = { kind: 'u', id: o.userId }
    else {
      const sid = 'sessionId' in o ? o.sessionId : await this.sessionOfRefresh(o.refreshToken)
      if (!sid) throw new AuthError('TOKEN_INVALID', 'The refresh token is not known')
      change = { kind: 's', id: sid }
    }
    await db.transaction(async (tx) => {
      const changed = change.kind === 'u' ? (await sql.revokeUserSessions(tx, change.id, 'logout')).length > 0 : await sql.revokeSession(tx, change.kind === 's' ? change.id : '', 'logout')
      if (changed) await this.#s.announce(tx, change)
    })
    this.#s.statusCache().apply(change)
  }
}
