import type { Queryable } from '@onepipe/core'
import type { StreamMeta } from '../types.js'
import type { PlacedRecord } from '../batch.js'

/**
 * The PostgreSQL store's statements, one operation each, every value a
 * parameter. Tables: `_onepipe_streams`, `_onepipe_stream_records`
 * (migration 000007).
 */

/** Record rows per INSERT statement (5 parameters each, far below the 65535 limit). */
const INSERT_CHUNK = 1000

/** Serializes transactions on one stream across every process, including its creation. */
export async function lockStream(tx: Queryable, key: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [key])
}

export async function selectMeta(q: Queryable, path: string): Promise<StreamMeta | undefined> {
  const [row] = await q.query<{ meta: StreamMeta }>('SELECT meta FROM _onepipe_streams WHERE path = $1', [path])
  return row?.meta
}

export async function upsertMeta(tx: Queryable, path: string, meta: StreamMeta): Promise<void> {
  await tx.execute(
    `INSERT INTO _onepipe_streams (path, meta, expires_at) VALUES ($1, $2::jsonb, $3)
     ON CONFLICT (path) DO UPDATE SET meta = EXCLUDED.meta, expires_at = EXCLUDED.expires_at`,
    [path, meta, meta.expiresAt ?? null],
  )
}

export async function deleteStream(tx: Queryable, path: string): Promise<void> {
  await tx.execute('DELETE FROM _onepipe_streams WHERE path = $1', [path])
}

export async function deleteRecords(tx: Queryable, path: string): Promise<void> {
  await tx.execute('DELETE FROM _onepipe_stream_records WHERE path = $1', [path])
}

/** Inserts records at their assigned positions (`seq`/`bytes` = the two halves of their offset). */
export async function insertRecords(tx: Queryable, path: string, records: readonly { seq: number; bytes: number; rec: PlacedRecord }[]): Promise<void> {
  for (let i = 0; i < records.length; i += INSERT_CHUNK) {
    const chunk = records.slice(i, i + INSERT_CHUNK)
    const params: unknown[] = [path]
    const rows = chunk.map(({ seq, bytes, rec }) => {
      params.push(seq, bytes, rec.count, Buffer.from(rec.data.buffer, rec.data.byteOffset, rec.data.byteLength))
      const n = params.length
      return `($1, $${n - 3}, $${n - 2}, $${n - 1}, $${n})`
    })
    await tx.execute(`INSERT INTO _onepipe_stream_records (path, seq, bytes, count, data) VALUES ${rows.join(', ')}`, params)
  }
}

export interface RecordRow {
  meta: StreamMeta
  seq: number | null
  bytes: number | null
  count: number | null
  data: Uint8Array | null
}

/**
 * Meta and the records from record number `fromSeq` in ONE statement (one
 * snapshot): at most `limit` records, stopping before `untilSeq`, and only
 * as many as fit in `maxBytes` (the first record always comes). No row means
 * no stream; one row with null columns means no records.
 */
export async function selectRecords(q: Queryable, path: string, fromSeq: number, untilSeq: number, limit: number, maxBytes: number): Promise<RecordRow[]> {
  return q.query<RecordRow>(
    `SELECT s.meta, r.seq, r.bytes, r.count, r.data
     FROM _onepipe_streams s
     LEFT JOIN LATERAL (
       SELECT w.seq, w.bytes, w.count, w.data FROM (
         SELECT seq, bytes, count, data, sum(octet_length(data)) OVER (ORDER BY seq) AS upto
         FROM _onepipe_stream_records
         WHERE path = s.path AND seq >= $2 AND seq < $3
         ORDER BY seq
         LIMIT $4
       ) w
       WHERE w.upto <= $5 OR w.seq = $2
     ) r ON true
     WHERE s.path = $1
     ORDER BY r.seq`,
    [path, fromSeq, untilSeq, limit, maxBytes],
  )
}

export async function selectExpired(q: Queryable, now: number, limit: number): Promise<string[]> {
  const rows = await q.query<{ path: string }>('SELECT path FROM _onepipe_streams WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2', [now, limit])
  return rows.map((r) => r.path)
}

export async function notifyChange(tx: Queryable, channel: string, payload: string): Promise<void> {
  await tx.query('SELECT pg_notify($1, $2)', [channel, payload])
}
