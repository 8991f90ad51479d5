import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '@onepipe/sdk'
import { testDatabase, waitFor } from '@onepipe/testing'
import { KeyWaiters, NOTIFY, type WakeReason } from '../../src/channel/waiters.js'

// A NOTIFY sent while the LISTEN connection is down is gone: after the
// connection comes back, every waiting duplicate must look at its row at once
// instead of sleeping until its re-check. The re-checks here are made far
// longer than the deadlines, so only the reconnect can wake anyone in time.
let db: Database
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase({ backend: 'real' }))
})
afterAll(() => cleanup())

/** Terminates the backend(s) listening for channel notifications in this test's schema; answers how many. */
async function killListener(): Promise<number> {
  const killed = await db.query<{ ok: boolean }>(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE query ILIKE 'listen%' AND query ILIKE $1 AND pid <> pg_backend_pid()`,
    [`%${db.channel(NOTIFY)}%`],
  )
  return killed.length
}

describe('Channel waiters across a lost LISTEN connection', () => {
  it('every waiter is woken, as reconnected, as soon as the listener is back', async () => {
    const waiters = new KeyWaiters(db, 600_000)
    try {
      const tags = ['pay\tk1', 'pay\tk2', 'refund\tk1']
      const registered = tags.map((t) => waiters.register(t))
      await waiters.ready()
      const reasons: WakeReason[] = []
      for (const w of registered) void w.wait(600_000).then((r) => reasons.push(r))
      expect(await killListener()).toBe(1)
      await waitFor(() => reasons.length === tags.length, { what: 'every waiter to wake after the reconnect' })
      expect(reasons).toEqual(['reconnected', 'reconnected', 'reconnected'])
      for (const w of registered) w.cancel()
      // Notifications flow again on the new connection.
      const w = waiters.register('pay\tk3')
      const woken = w.wait(600_000)
      await db.notify(NOTIFY, 'pay\tk3')
      expect(await woken).toBe('notified')
      w.cancel()
    } finally {
      await waiters.close()
    }
  })
})
