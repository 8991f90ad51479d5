import { AuthError, requestView, type Auth } from '@onepipe/sdk'
import type { Database } from '@onepipe/core'
import type { Context } from 'hono'
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { workerSession } from '../workers/sql.js'

/**
 * Who calls the external API: always an application, sometimes as one of
 * its bootstrapped workers.
 *
 * @example
 * ```ts
 * { appId: '9c0…', workerId: '1f2…' }
 * ```
 */
export interface ApiCaller {
  appId: string
  workerId: string | null
}

const SESSION = /^ows_([0-9a-f-]{36})_([A-Za-z0-9_-]{43})$/
const CACHE_MS = 5000

/** sha256 of a session token: what the workers table keeps. */
export const hashToken = (t: string): string => createHash('sha256').update(t).digest('hex')

/** A new worker session token and its hash. */
export function newSessionToken(workerId: string): { token: string; hash: string } {
  const token = `ows_${workerId}_${randomBytes(32).toString('base64url')}`
  return { token, hash: hashToken(token) }
}

/**
 * Tells the caller of an external API request: `X-API-Key` (an
 * application's key, checked by OnePipe's Auth) or `Authorization: Bearer
 * ows_…` (a worker session from bootstrap). Sessions are cached for 5 s per
 * process; a shutdown ends one at once here and within 5 s elsewhere.
 */
export class Callers {
  readonly #auth: () => Auth
  readonly #db: Database
  readonly #sessions = new Map<string, { appId: string; hash: string; stopped: boolean; at: number }>()

  constructor(auth: () => Auth, db: Database) {
    this.#auth = auth
    this.#db = db
  }

  /** @throws AuthError 401 without valid credentials, 403 for a caller that is not an application */
  async of(c: Context): Promise<ApiCaller> {
    const authz = c.req.header('authorization')
    if (authz !== undefined) {
      const m = /^Bearer +(\S+) *$/i.exec(authz)
      const s = m?.[1] ? SESSION.exec(m[1]) : null
      if (!s?.[1] || !m?.[1]) throw new AuthError('TOKEN_INVALID', 'The worker API takes an application key (X-API-Key) or a worker session token (Authorization: Bearer ows_…)')
      return { appId: await this.#session(s[1], m[1]), workerId: s[1] }
    }
    if (c.req.header('x-api-key') === undefined) throw new AuthError('UNAUTHORIZED', 'Send an application API key in X-API-Key (docs/auth.md)')
    const caller = await this.#auth().authenticateView(requestView(c))
    if (!caller || caller.kind !== 'application' || !caller.applicationId) throw new AuthError('FORBIDDEN', 'Only an application key may call the worker API')
    return { appId: caller.applicationId, workerId: null }
  }

  async #session(workerId: string, token: string): Promise<string> {
    let s = this.#sessions.get(workerId)
    if (!s || Date.now() - s.at > CACHE_MS) {
      const row = await workerSession(this.#db, workerId)
      if (!row) throw new AuthError('TOKEN_INVALID', 'Unknown worker session; bootstrap again')
      s = { appId: row.app_id, hash: row.session_hash, stopped: row.status === 'stopped', at: Date.now() }
      if (this.#sessions.size > 10_000) this.#sessions.clear()
      this.#sessions.set(workerId, s)
    }
    const a = Buffer.from(hashToken(token))
    const b = Buffer.from(s.hash)
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new AuthError('TOKEN_INVALID', 'The worker session token is not valid')
    if (s.stopped) throw new AuthError('TOKEN_REVOKED', 'This worker session was shut down; bootstrap again')
    return s.appId
  }

  /** Ends a session in this process at once (other replicas within 5 s). */
  forget(workerId: string): void {
    const s = this.#sessions.get(workerId)
    if (s) s.stopped = true
  }
}
