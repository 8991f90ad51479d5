// Cron wake-ups survive a lost LISTEN connection: a manual run queued while
// the lease holder's listening connection was down (its "wake" NOTIFY lost)
// is run as soon as the connection is back, not at the holder's next look
// (30 s away for a job whose next tick is far off). "Lost" is a run queued
// with no NOTIFY at all before the listening connection is killed.
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Cron, Database, silentLogger, type RuntimeContext } from '@onepipe/sdk'
import { postgresUrl, testDatabase, uniqueName, waitFor } from '@onepipe/testing'

let db: Database
let schema: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({ db, schema, cleanup } = await testDatabase({ backend: 'real' }))
})
afterAll(async () => {
  await cleanup()
})

it('a manual run queued while the holder’s LISTEN connection was down runs as soon as it reconnects', async () => {
  const appName = uniqueName('cronr')
  const hdb = Database.create(appName).postgres(postgresUrl()).schema(schema).pool({ max: 4 }).build()
  const name = uniqueName('job')
  const ran: string[] = []
  const job = Cron.create(name)
    .schedule('0 0 1 1 *')
    .lease({ ttlMs: 120_000, renewMs: 60_000 })
    .handler((ctx) => void ran.push(ctx.kind))
    .build()
  const rt: RuntimeContext = { instanceId: 'holder', db: hdb, cache: undefined as never, logger: silentLogger, signal: new AbortController().signal }
  try {
    await job.attach(rt)
    // The holder's first pass ends with its retention sweep (a DELETE): once that has answered, the
    // scheduler sleeps until its next look, so a run queued from now on is not picked up by that pass.
    await waitFor(
      async () =>
        (await db.query(`SELECT 1 FROM pg_stat_activity WHERE application_name LIKE $1 AND state = 'idle' AND query ILIKE 'DELETE FROM _onepipe_cron_executions%'`, [`onepipe:${appName}@%`])).length > 0,
      { what: 'the holder’s first pass to end' },
    )
    expect((await job.info()).lease).toMatchObject({ holder: 'holder', live: true })
    const id = randomUUID()
    await db.execute(`INSERT INTO _onepipe_cron_executions (execution_id, job_name, scheduled_time, kind, status) VALUES ($1, $2, clock_timestamp(), 'manual', 'queued')`, [id, name])
    const killed = await waitFor(
      async () => (await db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1 AND query ILIKE 'listen%'`, [`onepipe:${appName}@%`])).length,
      { what: 'the holder’s LISTEN connection' },
    )
    expect(killed).toBe(1)
    // The holder's own next look is 30 s away: within this wait only the reconnect can wake it.
    await waitFor(async () => (await db.query<{ status: string }>('SELECT status FROM _onepipe_cron_executions WHERE execution_id = $1', [id]))[0]?.status === 'completed', {
      timeoutMs: 20_000,
      what: 'the queued run to be run after the reconnect',
    })
    expect(ran).toEqual(['manual'])
  } finally {
    await job.detach()
    await hdb.close()
  }
})
