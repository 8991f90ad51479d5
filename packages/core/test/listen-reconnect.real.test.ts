import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Database } from '@onepipe/core'
import { testDatabase, waitFor } from '@onepipe/testing'

// A LISTEN connection that is lost comes back by itself, but NOTIFYs sent in
// the gap are gone: the listener is told, so it can re-check.
describe('Database.listen across a lost connection', () => {
  let db: Database
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ db, cleanup } = await testDatabase())
  })
  afterAll(() => cleanup())

  it('calls onReconnect after the listening backend is terminated, and delivers notifications again', async () => {
    const got: string[] = []
    let reconnects = 0
    const stop = await db.listen('lost', (p) => got.push(p), { onReconnect: () => reconnects++ })
    await db.notify('lost', 'before')
    await waitFor(() => got.includes('before'))
    const killed = await db.query<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE query ILIKE 'listen%' AND query ILIKE $1 AND pid <> pg_backend_pid()`,
      [`%${db.channel('lost')}%`],
    )
    expect(killed.length).toBeGreaterThan(0)
    await waitFor(() => reconnects > 0, { what: 'the listener to reconnect' })
    expect(reconnects).toBe(1)
    await db.notify('lost', 'after')
    await waitFor(() => got.includes('after'), { what: 'a notification after the reconnect' })
    await stop()
    // Stopping still stops after a reconnect (postgres.js re-creates its listener then), while
    // another listener of the same channel keeps hearing it.
    const other: string[] = []
    const stopOther = await db.listen('lost', (p) => other.push(p))
    await db.notify('lost', 'late')
    await waitFor(() => other.includes('late'))
    expect(got).not.toContain('late')
    await stopOther()
  })
})
