// Every statement Auth runs, one small function each, always parameterized.
// Times that decide anything (expiry, the reuse interval) are the database's
// now(), so instances with drifting clocks still agree.
import type { Queryable } from '@onepipe/core'

/** A user as stored, without the password hash. */
export interface UserRow {
  id: string
  email: string
  roles: string[]
  disabled_at: Date | null
  created_at: Date
  last_login_at: Date | null
}

/** A user with the password hash, for login only. */
export interface CredentialRow extends UserRow {
  password_hash: string
}

const USER_COLS = 'id, email, roles, disabled_at, created_at, last_login_at'

/** Inserts a user; undefined when the email (case-insensitively) is taken. */
export async function insertUser(q: Queryable, u: { id: string; email: string; passwordHash: string; roles: string[] }): Promise<UserRow | undefined> {
  const [row] = await q.query<UserRow>(
    `INSERT INTO _onepipe_auth_users (id, email, password_hash, roles) VALUES ($1, $2, $3, $4::text::jsonb)
     ON CONFLICT ((lower(email))) DO NOTHING RETURNING ${USER_COLS}`,
    [u.id, u.email, u.passwordHash, JSON.stringify(u.roles)],
  )
  return row
}

export async function credentialsByEmail(q: Queryable, email: string): Promise<CredentialRow | undefined> {
  const [row] = await q.query<CredentialRow>(`SELECT ${USER_COLS}, password_hash FROM _onepipe_auth_users WHERE lower(email) = lower($1)`, [email])
  return row
}

export async function userById(q: Queryable, id: string): Promise<UserRow | undefined> {
  const [row] = await q.query<UserRow>(`SELECT ${USER_COLS} FROM _onepipe_auth_users WHERE id = $1`, [id])
  return row
}

/** Users by email (case-insensitively), `limit` after the email `after`. */
export async function listUsers(q: Queryable, o: { limit: number; after: string | undefined }): Promise<UserRow[]> {
  return q.query<UserRow>(`SELECT ${USER_COLS} FROM _onepipe_auth_users WHERE ($1::text IS NULL OR lower(email) > lower($1)) ORDER BY lower(email) LIMIT $2`, [o.after ?? null, o.limit])
}

export async function setUserDisabled(q: Queryable, id: string, disabled: boolean): Promise<UserRow | undefined> {
  const [row] = await q.query<UserRow>(
    `UPDATE _onepipe_auth_users SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) ELSE NULL END, updated_at = now() WHERE id = $1 RETURNING ${USER_COLS}`,
    [id, disabled],
  )
  return row
}

export async function setUserRoles(q: Queryable, id: string, roles: string[]): Promise<UserRow | undefined> {
  const [row] = await q.query<UserRow>(`UPDATE _onepipe_auth_users SET roles = $2::text::jsonb, updated_at = now() WHERE id = $1 RETURNING ${USER_COLS}`, [id, JSON.stringify(roles)])
  return row
}

export async function setPasswordHash(q: Queryable, id: string, hash: string): Promise<boolean> {
  return (await q.execute('UPDATE _onepipe_auth_users SET password_hash = $2, updated_at = now() WHERE id = $1', [id, hash])) > 0
}

/** Starts a session (a refresh-token family) with its first token and records the login, in one statement. */
export async function startSession(q: Queryable, s: { id: string; userId: string; tokenHash: string; ttlMs: number }): Promise<void> {
  await q.query(
    `WITH s AS (INSERT INTO _onepipe_auth_sessions (id, user_id) VALUES ($1, $2) RETURNING id),
     t AS (INSERT INTO _onepipe_auth_refresh_tokens (token_hash, session_id, expires_at) SELECT $3, id, now() + $4::double precision * interval '1 millisecond' FROM s),
     u AS (UPDATE _onepipe_auth_users SET last_login_at = now() WHERE id = $2)
     SELECT 1`,
    [s.id, s.userId, s.tokenHash, s.ttlMs],
  )
}

/** The session a refresh token belongs to, and its user. */
export interface SessionRow {
  id: string
  user_id: string
  revoked: boolean
  disabled: boolean
  roles: string[]
  email: string
}

/**
 * Locks the session (family) of a refresh token until the transaction ends:
 * every refresh of one family runs one at a time, so a rotation, a repeat
 * within the reuse interval and a revocation for reuse never interleave.
 */
export async function lockSessionOfToken(q: Queryable, tokenHash: string): Promise<SessionRow | undefined> {
  const [row] = await q.query<SessionRow>(
    `SELECT s.id, s.user_id, s.revoked_at IS NOT NULL AS revoked, u.disabled_at IS NOT NULL AS disabled, u.roles, u.email
     FROM _onepipe_auth_sessions s JOIN _onepipe_auth_users u ON u.id = s.user_id
     WHERE s.id = (SELECT session_id FROM _onepipe_auth_refresh_tokens WHERE token_hash = $1)
     FOR UPDATE OF s`,
    [tokenHash],
  )
  return row
}

/** A refresh token as rotation sees it (read after the family's lock, so it is current). */
export interface TokenRow {
  session_id: string
  expired: boolean
  used: boolean
  /** When it was exchanged, in whole seconds since the epoch (the `iat` of the pair it was exchanged for). */
  used_sec: number | null
  /** Exchanged less than the reuse interval ago. */
  within_reuse: boolean
}

export async function readToken(q: Queryable, tokenHash: string, reuseMs: number): Promise<TokenRow | undefined> {
  const [row] = await q.query<TokenRow>(
    `SELECT session_id, expires_at <= now() AS expired, used_at IS NOT NULL AS used,
       floor(extract(epoch FROM used_at))::bigint AS used_sec,
       coalesce(used_at > now() - $2::double precision * interval '1 millisecond', false) AS within_reuse
     FROM _onepipe_auth_refresh_tokens WHERE token_hash = $1`,
    [tokenHash, reuseMs],
  )
  return row
}

/**
 * Spends a refresh token and adds its successor to the family, in one
 * statement; returns when it was spent (whole seconds), or undefined if it
 * was spent already.
 */
export async function rotateToken(q: Queryable, r: { tokenHash: string; successorHash: string; ttlMs: number }): Promise<number | undefined> {
  const [row] = await q.query<{ used_sec: number }>(
    `WITH spent AS (UPDATE _onepipe_auth_refresh_tokens SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL RETURNING session_id, used_at),
     next AS (INSERT INTO _onepipe_auth_refresh_tokens (token_hash, session_id, expires_at)
              SELECT $2, session_id, now() + $3::double precision * interval '1 millisecond' FROM spent ON CONFLICT (token_hash) DO NOTHING),
     touched AS (UPDATE _onepipe_auth_sessions SET last_used_at = now() WHERE id IN (SELECT session_id FROM spent))
     SELECT floor(extract(epoch FROM used_at))::bigint AS used_sec FROM spent`,
    [r.tokenHash, r.successorHash, r.ttlMs],
  )
  return row?.used_sec
}

/** Revokes a session; false when it was revoked already (or does not exist). */
export async function revokeSession(q: Queryable, id: string, reason: string): Promise<boolean> {
  return (await q.execute('UPDATE _onepipe_auth_sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL', [id, reason])) > 0
}

/** Revokes every live session of a user; returns their ids. */
export async function revokeUserSessions(q: Queryable, userId: string, reason: string, except?: string): Promise<string[]> {
  const rows = await q.query<{ id: string }>(
    'UPDATE _onepipe_auth_sessions SET revoked_at = now(), revoked_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL AND ($3::uuid IS NULL OR id <> $3) RETURNING id',
    [userId, reason, except ?? null],
  )
  return rows.map((r) => r.id)
}

/** A session's status for access-token checks. */
export async function sessionStatus(q: Queryable, sid: string): Promise<SessionRow | undefined> {
  const [row] = await q.query<SessionRow>(
    `SELECT s.id, s.user_id, s.revoked_at IS NOT NULL AS revoked, u.disabled_at IS NOT NULL AS disabled, u.roles, u.email
     FROM _onepipe_auth_sessions s JOIN _onepipe_auth_users u ON u.id = s.user_id WHERE s.id = $1`,
    [sid],
  )
  return row
}

/** The session of a refresh token (logout), whatever its state. */
export async function sessionOfToken(q: Queryable, tokenHash: string): Promise<string | undefined> {
  const [row] = await q.query<{ session_id: string }>('SELECT session_id FROM _onepipe_auth_refresh_tokens WHERE token_hash = $1', [tokenHash])
  return row?.session_id
}

/** Deletes refresh tokens expired a day ago and sessions without a live token that ended (or idled out) a day ago. */
export async function sweepSessions(q: Queryable): Promise<number> {
  const tokens = await q.execute("DELETE FROM _onepipe_auth_refresh_tokens WHERE expires_at < now() - interval '1 day'")
  const sessions = await q.execute(
    `DELETE FROM _onepipe_auth_sessions s WHERE (s.revoked_at < now() - interval '1 day' OR s.last_used_at < now() - interval '30 days')
     AND NOT EXISTS (SELECT 1 FROM _onepipe_auth_refresh_tokens t WHERE t.session_id = s.id AND t.expires_at > now())`,
  )
  return tokens + sessions
}

export async function countUsers(q: Queryable): Promise<number> {
  const [row] = await q.query<{ n: number }>('SELECT count(*)::bigint AS n FROM _onepipe_auth_users')
  return row?.n ?? 0
}

/** An application as stored. */
export interface ApplicationRow {
  id: string
  name: string
  created_at: Date
  disabled_at: Date | null
}

export async function insertApplication(q: Queryable, a: { id: string; name: string }): Promise<ApplicationRow> {
  const [row] = await q.query<ApplicationRow>('INSERT INTO _onepipe_auth_applications (id, name) VALUES ($1, $2) RETURNING id, name, created_at, disabled_at', [a.id, a.name])
  return row as ApplicationRow
}

export async function applicationById(q: Queryable, id: string): Promise<ApplicationRow | undefined> {
  const [row] = await q.query<ApplicationRow>('SELECT id, name, created_at, disabled_at FROM _onepipe_auth_applications WHERE id = $1', [id])
  return row
}

export async function listApplications(q: Queryable, only: string | undefined): Promise<ApplicationRow[]> {
  return q.query<ApplicationRow>('SELECT id, name, created_at, disabled_at FROM _onepipe_auth_applications WHERE ($1::uuid IS NULL OR id = $1) ORDER BY created_at, id', [only ?? null])
}

/** An API key as stored (its hash, never the key). */
export interface ApiKeyRow {
  id: string
  application_id: string
  name: string
  prefix: string
  key_hash: string
  roles: string[]
  created_at: Date
  last_used_at: Date | null
  disabled_at: Date | null
  expires_at: Date | null
  replaced_by: string | null
}

const KEY_COLS = 'id, application_id, name, prefix, key_hash, roles, created_at, last_used_at, disabled_at, expires_at, replaced_by'

/** Inserts a key; undefined when its prefix is taken (draw another). */
export async function insertApiKey(q: Queryable, k: { id: string; applicationId: string; name: string; prefix: string; hash: string; roles: string[] }): Promise<ApiKeyRow | undefined> {
  const [row] = await q.query<ApiKeyRow>(
    `INSERT INTO _onepipe_auth_api_keys (id, application_id, name, prefix, key_hash, roles) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)
     ON CONFLICT (prefix) DO NOTHING RETURNING ${KEY_COLS}`,
    [k.id, k.applicationId, k.name, k.prefix, k.hash, JSON.stringify(k.roles)],
  )
  return row
}

export async function apiKeyById(q: Queryable, id: string): Promise<ApiKeyRow | undefined> {
  const [row] = await q.query<ApiKeyRow>(`SELECT ${KEY_COLS} FROM _onepipe_auth_api_keys WHERE id = $1`, [id])
  return row
}

export async function listApiKeys(q: Queryable, applicationId: string): Promise<ApiKeyRow[]> {
  return q.query<ApiKeyRow>(`SELECT ${KEY_COLS} FROM _onepipe_auth_api_keys WHERE application_id = $1 ORDER BY created_at, id`, [applicationId])
}

/** A key for request checks: the key, whether it is usable now, and its application's state. */
export interface KeyStatusRow {
  id: string
  application_id: string
  key_hash: string
  roles: string[]
  usable: boolean
  /** Milliseconds until an overlap after rotation ends; null when it does not expire. */
  expires_in_ms: number | null
}

export async function apiKeyStatus(q: Queryable, prefix: string): Promise<KeyStatusRow | undefined> {
  const [row] = await q.query<KeyStatusRow>(
    `SELECT k.id, k.application_id, k.key_hash, k.roles,
       (k.disabled_at IS NULL AND a.disabled_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())) AS usable,
       CASE WHEN k.expires_at IS NULL THEN NULL ELSE floor(extract(epoch FROM k.expires_at - now()) * 1000)::bigint END AS expires_in_ms
     FROM _onepipe_auth_api_keys k JOIN _onepipe_auth_applications a ON a.id = k.application_id WHERE k.prefix = $1`,
    [prefix],
  )
  return row
}

export async function disableApiKey(q: Queryable, id: string): Promise<ApiKeyRow | undefined> {
  const [row] = await q.query<ApiKeyRow>(`UPDATE _onepipe_auth_api_keys SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1 RETURNING ${KEY_COLS}`, [id])
  return row
}

/** Marks a key replaced by `by`: it stops at once (`overlapMs` 0) or after the overlap. */
export async function retireApiKey(q: Queryable, id: string, by: string, overlapMs: number): Promise<void> {
  await q.execute(
    `UPDATE _onepipe_auth_api_keys SET replaced_by = $2,
       disabled_at = CASE WHEN $3::double precision <= 0 THEN coalesce(disabled_at, now()) ELSE disabled_at END,
       expires_at = CASE WHEN $3::double precision > 0 THEN now() + $3::double precision * interval '1 millisecond' ELSE expires_at END
     WHERE id = $1`,
    [id, by, overlapMs],
  )
}

/** Records a key's use, at most once a minute whichever instance saw it. */
export async function touchApiKey(q: Queryable, id: string): Promise<void> {
  await q.execute("UPDATE _onepipe_auth_api_keys SET last_used_at = now() WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", [id])
}

/** Sends a NOTIFY on `channel` with the transaction (delivered at commit). */
export async function notifyIn(q: Queryable, channel: string, payload: string): Promise<void> {
  await q.query('SELECT pg_notify($1, $2)', [channel, payload])
}
