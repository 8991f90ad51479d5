import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '@onepipe/sdk'
import { testDatabase, waitFor } from '@onepipe/testing'
import { Channel } from '../../src/channel/channel.js'
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

  it('a duplicate whose owner finished while the listener was down gets the result right after the reconnect', async () => {
    const name = 'reconnect-pay'
    let ran = 0
    // Built directly to make its re-check ten minutes: only the reconnect can wake it within the deadline.
    const dup = new Channel<{ id: string }, unknown>({
      name,
      input: undefined,
      output: undefined,
      db,
      idempotency: { key: (i) => (i as { id: string }).id, ttlMs: 3_600_000, leaseMs: 600_000 },
      retry: { attempts: 1, backoff: 'fixed', delayMs: 0, maxDelayMs: 0 },
      timeoutMs: undefined,
      history: true,
      transactional: false,
      recheckMs: 600_000,
      handler: () => ++ran,
    })
    try {
      // Another instance owns the key: alive, its lease running for ten minutes.
      const hash = createHash('sha256').update(JSON.stringify({ id: 'k' })).digest('base64url')
      await db.execute(
        `INSERT INTO _onepipe_channel_idempotency (channel_name, idempotency_key, input_hash, status, owner, lease_expires_at, expires_at)
         VALUES ($1, 'k', $2, 'pending', 'elsewhere', now() + interval '10 minutes', now() + interval '1 hour')`,
        [name, hash],
      )
      let answer: { value: unknown } | { error: unknown } | undefined
      void dup.call({ id: 'k' }).then(
        (value) => (answer = { value }),
        (error: unknown) => (answer = { error }),
      )
      await waitFor(async () => (await db.query<{ waiters: boolean }>(`SELECT waiters FROM _onepipe_channel_idempotency WHERE channel_name = $1`, [name]))[0]?.waiters, {
        what: 'the duplicate to wait for the key',
      })
      // The owner finishes while this instance's listener is down: its NOTIFY never arrives, so none is sent at all.
      await db.execute(`UPDATE _onepipe_channel_idempotency SET status = 'completed', result = '{"by":"owner"}', lease_expires_at = NULL WHERE channel_name = $1`, [name])
      expect(await killListener()).toBeGreaterThan(0)
      await waitFor(() => answer, { what: 'the duplicate to answer after the reconnect (its own re-check is ten minutes away)' })
      expect(answer).toEqual({ value: { by: 'owner' } })
      expect(ran).toBe(0)
    } finally {
      await dup.close()
    }
  })
})
