// Handler cursors of the semantic layer: one row per (semantic app, handler)
// with the last event offset it finished and a lease, so one instance at a
// time moves a handler forward and another takes over when it dies. One SQL
// operation per function; every instant on the database clock.
import type { Queryable } from '@onepipe/core'

/**
 * Takes (or renews) the lease of a handler's cursor for `owner` until
 * `ttlMs` from now, creating the cursor at `start` the first time; answers
 * the offset to continue after, or undefined while another owner holds it.
 */
export async function leaseCursor(q: Queryable, app: string, handler: string, owner: string, ttlMs: number, start: number): Promise<number | undefined> {
  const [row] = await q.query<{ last_offset: string | number }>(
    `INSERT INTO _onepipe_semantic_cursors AS c (app_name, handler, last_offset, owner, lease_until)
     VALUES ($1, $2, $5, $3, now() + $4::float8 * interval '1 millisecond')
     ON CONFLICT (app_name, handler) DO UPDATE SET owner = $3, lease_until = excluded.lease_until
       WHERE c.owner IS NULL OR c.owner = $3 OR c.lease_until < now()
     RETURNING c.last_offset`,
    [app, handler, owner, ttlMs, start],
  )
  return row ? Number(row.last_offset) : undefined
}

/** Moves the cursor forward, only while `owner` still holds the lease (a lost lease moves nothing). */
export async function advanceCursor(q: Queryable, app: string, handler: string, owner: string, offset: number): Promise<boolean> {
  const n = await q.execute(
    `UPDATE _onepipe_semantic_cursors SET last_offset = GREATEST(last_offset, $4), updated_at = now()
     WHERE app_name = $1 AND handler = $2 AND owner = $3 AND lease_until >= now()`,
    [app, handler, owner, offset],
  )
  return n > 0
}

/** Gives the lease back at a clean stop, so another instance continues at once. */
export async function releaseCursor(q: Queryable, app: string, handler: string, owner: string): Promise<void> {
  await q.execute('UPDATE _onepipe_semantic_cursors SET owner = NULL, lease_until = NULL WHERE app_name = $1 AND handler = $2 AND owner = $3', [app, handler, owner])
}
