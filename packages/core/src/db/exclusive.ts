import type { DriverQueryable } from './drivers.js'

/**
 * Ends every lease left in an embedded database by the process that had it
 * before this one. An embedded folder is locked to one process, so whoever
 * held a lease when this process opened the folder is gone (killed, or
 * stopped without handing back): its workflow runs, cron jobs and pending
 * channel keys are taken over at once instead of after their lease timeouts
 * (30 s by default), which on PostgreSQL are what tells a dead instance from
 * a slow one.
 */
export async function expireLeftLeases(q: DriverQueryable): Promise<void> {
  await q.exec(`
    UPDATE _onepipe_workflows SET heartbeat_at = '-infinity' WHERE owner IS NOT NULL AND status IN ('pending', 'running');
    UPDATE _onepipe_cron_locks SET expires_at = now() WHERE expires_at > now();
    UPDATE _onepipe_channel_idempotency SET lease_expires_at = now() WHERE status = 'pending' AND lease_expires_at > now();
  `)
}
