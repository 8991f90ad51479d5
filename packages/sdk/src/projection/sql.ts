import type { Queryable } from '@onepipe/core'

/** The projection's row as the runner and readers see it. */
export interface StateRow {
  state: unknown
  last_offset: string
  event_count: number
  version: number
}

export const CHANNEL = 'onepipe_projections'

export async function ensureStateRow(q: Queryable, name: string, initial: unknown): Promise<void> {
  await q.execute(`INSERT INTO _onepipe_projection_state (name, state, last_offset) VALUES ($1, $2::text::jsonb, '0') ON CONFLICT (name) DO NOTHING`, [name, JSON.stringify(initial)])
}

export async function selectState(q: Queryable, name: string): Promise<StateRow | undefined> {
  const [r] = await q.query<StateRow>('SELECT state, last_offset, event_count, version FROM _onepipe_projection_state WHERE name = $1', [name])
  return r
}

/** Locks the row for this transaction, or answers undefined when another runner holds it. */
export async function lockState(q: Queryable, name: string): Promise<StateRow | undefined> {
  const [r] = await q.query<StateRow>('SELECT state, last_offset, event_count, version FROM _onepipe_projection_state WHERE name = $1 FOR UPDATE SKIP LOCKED', [name])
  return r
}

/** Locks the row, waiting for a runner that holds it. */
export async function lockStateWait(q: Queryable, name: string): Promise<StateRow | undefined> {
  const [r] = await q.query<StateRow>('SELECT state, last_offset, event_count, version FROM _onepipe_projection_state WHERE name = $1 FOR UPDATE', [name])
  return r
}

export async function writeState(q: Queryable, name: string, channel: string, s: { state: unknown; lastOffset: string; applied: number; version: number }): Promise<void> {
  await q.query(
    `WITH u AS (
       UPDATE _onepipe_projection_state SET state = $2::text::jsonb, last_offset = $3, event_count = event_count + $4, version = $5, updated_at = now()
       WHERE name = $1 RETURNING name
     ) SELECT pg_notify($6, u.name) IS NULL AS n FROM u`,
    [name, JSON.stringify(s.state), s.lastOffset, s.applied, s.version, channel],
  )
}

export async function resetState(q: Queryable, name: string, channel: string, initial: unknown, version: number): Promise<void> {
  await q.execute('DELETE FROM _onepipe_projection_entities WHERE projection_name = $1', [name])
  await q.query(
    `WITH u AS (
       UPDATE _onepipe_projection_state SET state = $2::text::jsonb, last_offset = '0', event_count = 0, version = $3, updated_at = now()
       WHERE name = $1 RETURNING name
     ) SELECT pg_notify($4, u.name) IS NULL AS n FROM u`,
    [name, JSON.stringify(initial), version, channel],
  )
}

export async function selectEntities(q: Queryable, name: string, keys: string[]): Promise<Map<string, unknown>> {
  const rows = await q.query<{ entity_key: string; state: unknown }>(
    `SELECT entity_key, state FROM _onepipe_projection_entities
     WHERE projection_name = $1 AND entity_key IN (SELECT jsonb_array_elements_text($2::text::jsonb))`,
    [name, JSON.stringify(keys)],
  )
  return new Map(rows.map((r) => [r.entity_key, r.state]))
}

export async function upsertEntities(q: Queryable, name: string, states: Map<string, unknown>, version: number): Promise<void> {
  await q.execute(
    `INSERT INTO _onepipe_projection_entities (projection_name, entity_key, state, version)
     SELECT $1, e.key, e.value, $3 FROM jsonb_each($2::text::jsonb) AS e
     ON CONFLICT (projection_name, entity_key) DO UPDATE SET state = EXCLUDED.state, version = EXCLUDED.version`,
    [name, JSON.stringify(Object.fromEntries(states)), version],
  )
}

export async function selectEntity(q: Queryable, name: string, key: string): Promise<{ state: unknown; version: number } | undefined> {
  const [r] = await q.query<{ state: unknown; version: number }>('SELECT state, version FROM _onepipe_projection_entities WHERE projection_name = $1 AND entity_key = $2', [name, key])
  return r
}

export async function selectAllEntities(q: Queryable, name: string): Promise<{ entity_key: string; state: unknown }[]> {
  return q.query('SELECT entity_key, state FROM _onepipe_projection_entities WHERE projection_name = $1 ORDER BY entity_key', [name])
}

export async function selectChangedEntities(q: Queryable, name: string, sinceVersion: number): Promise<{ entity_key: string; state: unknown; version: number }[]> {
  return q.query('SELECT entity_key, state, version FROM _onepipe_projection_entities WHERE projection_name = $1 AND version > $2 ORDER BY version, entity_key', [name, sinceVersion])
}
