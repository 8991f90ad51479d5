import type { Database, Logger } from '@onepipe/core'
import { hostname } from 'node:os'

async function registerInstance(db: Database, id: string, version: string): Promise<void> {
  await db.execute(
    `INSERT INTO _onepipe_instances (instance_id, hostname, pid, version) VALUES ($1, $2, $3, $4)
     ON CONFLICT (instance_id) DO UPDATE SET last_seen_at = now()`,
    [id, hostname(), process.pid, version],
  )
}

async function touchInstance(db: Database, id: string): Promise<void> {
  await db.execute('UPDATE _onepipe_instances SET last_seen_at = now() WHERE instance_id = $1', [id])
}

async function removeInstance(db: Database, id: string): Promise<void> {
  await db.execute('DELETE FROM _onepipe_instances WHERE instance_id = $1', [id])
}

/**
 * Registers this process in `_onepipe_instances` and refreshes it every
 * 10 s, so the dashboard and lease owners can tell live instances from dead.
 */
export async function startInstanceHeartbeat(db: Database, id: string, version: string, logger: Logger): Promise<{ stop(): Promise<void> }> {
  await registerInstance(db, id, version)
  const t = setInterval(() => {
    touchInstance(db, id).catch((err: unknown) => logger.warn({ err }, 'instance heartbeat failed'))
  }, 10_000)
  t.unref()
  return {
    async stop() {
      clearInterval(t)
      await removeInstance(db, id).catch((err: unknown) => logger.warn({ err }, 'could not remove instance row'))
    },
  }
}

/**
 * The app's instances as their heartbeats record them, newest heartbeat
 * first; `live` when one was seen within three heartbeat periods (30 s).
 *
 * @example
 * ```ts
 * await listInstances(db) // [{ id: 'web-1:4242:8f1c2a', host: 'web-1', pid: 4242, live: true, … }]
 * ```
 */
export async function listInstances(db: Database): Promise<{ id: string; host: string; pid: number; version: string; startedAt: Date; heartbeatAt: Date; live: boolean }[]> {
  const rows = await db.query<{ instance_id: string; hostname: string; pid: number; version: string; started_at: Date; last_seen_at: Date; live: boolean }>(
    `SELECT instance_id, hostname, pid, version, started_at, last_seen_at, last_seen_at > now() - interval '30 seconds' AS live
     FROM _onepipe_instances ORDER BY last_seen_at DESC LIMIT 200`,
  )
  return rows.map((r) => ({ id: r.instance_id, host: r.hostname, pid: r.pid, version: r.version, startedAt: r.started_at, heartbeatAt: r.last_seen_at, live: r.live }))
}
