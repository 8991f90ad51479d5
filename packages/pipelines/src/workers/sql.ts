// Worker sessions: bootstrap, heartbeats, events, shutdown. The session
// token is stored only as its sha256.
import type { Queryable } from '@onepipe/core'

/** A worker row as read. */
export interface WorkerRow {
  id: string
  app_id: string
  name: string
  handlers: string[]
  concurrency: number
  version: string | null
  host: string | null
  session_hash: string
  status: string
  drain: boolean
  in_flight: number
  cpu: number | null
  memory_bytes: number | null
  lag_ms: number | null
  started_at: Date
  heartbeat_at: Date
  stopped_at: Date | null
}

export async function insertWorker(
  q: Queryable,
  w: { id: string; appId: string; name: string; handlers: string[]; concurrency: number; version: string | null; host: string | null; sessionHash: string },
): Promise<void> {
  await q.execute(
    `INSERT INTO _onepipe_workers (id, app_id, name, handlers, concurrency, version, host, session_hash, status)
     VALUES ($1, $2, $3, $4::text[], $5, $6, $7, $8, 'active')`,
    [w.id, w.appId, w.name, w.handlers, w.concurrency, w.version, w.host, w.sessionHash],
  )
}

export async function workerSession(q: Queryable, id: string): Promise<{ app_id: string; session_hash: string; status: string } | undefined> {
  const [row] = await q.query<{ app_id: string; session_hash: string; status: string }>(`SELECT app_id, session_hash, status FROM _onepipe_workers WHERE id = $1`, [id])
  return row
}

export async function heartbeat(
  q: Queryable,
  appId: string,
  h: { workerId: string; inFlight: number; cpu: number | null; memoryBytes: number | null; lagMs: number | null },
): Promise<{ drain: boolean } | undefined> {
  const [row] = await q.query<{ drain: boolean }>(
    `UPDATE _onepipe_workers SET heartbeat_at = now(), in_flight = $3, cpu = $4, memory_bytes = $5, lag_ms = $6,
            status = CASE WHEN status = 'lost' THEN 'active' ELSE status END
      WHERE id = $2 AND app_id = $1 AND status <> 'stopped' RETURNING drain`,
    [appId, h.workerId, h.inFlight, h.cpu, h.memoryBytes, h.lagMs],
  )
  return row
}

export async function insertWorkerEvents(q: Queryable, appId: string, workerId: string, eventsJson: string): Promise<number> {
  return q.execute(
    `INSERT INTO _onepipe_worker_events (app_id, worker_id, type, data, at)
     SELECT $1, $2, e.type, e.data, coalesce(e.at, now()) FROM jsonb_to_recordset($3::text::jsonb) AS e(type text, data jsonb, at timestamptz)
      WHERE EXISTS (SELECT 1 FROM _onepipe_workers WHERE id = $2 AND app_id = $1)`,
    [appId, workerId, eventsJson],
  )
}

export async function stopWorker(q: Queryable, appId: string, workerId: string): Promise<boolean> {
  return (await q.execute(`UPDATE _onepipe_workers SET status = 'stopped', stopped_at = now() WHERE id = $2 AND app_id = $1 AND status <> 'stopped'`, [appId, workerId])) > 0
}

/** Marks workers silent for longer than `silentMs` as lost (their jobs come back when their leases run out). */
export async function markLost(q: Queryable, silentMs: number): Promise<number> {
  return q.execute(
    `UPDATE _onepipe_workers SET status = 'lost' WHERE status IN ('active', 'draining') AND heartbeat_at < now() - $1::float8 * interval '1 millisecond'`,
    [silentMs],
  )
}

export async function listWorkers(q: Queryable, appId: string | null, limit: number): Promise<WorkerRow[]> {
  return q.query<WorkerRow>(`SELECT * FROM _onepipe_workers WHERE ($1::text IS NULL OR app_id = $1) ORDER BY heartbeat_at DESC LIMIT $2`, [appId, limit])
}

export async function setDrain(q: Queryable, appId: string | null, workerId: string): Promise<boolean> {
  return (await q.execute(`UPDATE _onepipe_workers SET drain = true, status = 'draining' WHERE id = $1 AND ($2::text IS NULL OR app_id = $2) AND status <> 'stopped'`, [workerId, appId])) > 0
}

/** Keeps this process's live-subscriber lease for `ms` more (see _onepipe_pipeline_listeners). */
export async function holdListenerLease(q: Queryable, instanceId: string, ms: number): Promise<void> {
  await q.execute(
    `INSERT INTO _onepipe_pipeline_listeners (instance_id, until) VALUES ($1, now() + $2::float8 * interval '1 millisecond')
     ON CONFLICT (instance_id) DO UPDATE SET until = excluded.until`,
    [instanceId, ms],
  )
}

export async function dropListenerLease(q: Queryable, instanceId: string): Promise<void> {
  await q.execute(`DELETE FROM _onepipe_pipeline_listeners WHERE instance_id = $1`, [instanceId])
}

/** Whether any replica has a live subscriber now. */
export async function anyListener(q: Queryable): Promise<boolean> {
  const [row] = await q.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM _onepipe_pipeline_listeners WHERE until > now()) AS any`)
  return row?.any === true
}

/** A worker's reported events, newest first (a key sees its own application's only). */
export async function listWorkerEvents(q: Queryable, appId: string | null, workerId: string, limit: number): Promise<{ id: number; type: string; data: unknown; at: Date }[]> {
  return q.query<{ id: number; type: string; data: unknown; at: Date }>(
    `SELECT id, type, data, at FROM _onepipe_worker_events WHERE worker_id = $1 AND ($2::text IS NULL OR app_id = $2) ORDER BY id DESC LIMIT $3`,
    [workerId, appId, limit],
  )
}
