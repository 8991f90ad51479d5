import { randomUUID } from 'node:crypto'
import { isRetryable, serializeError, type Database } from '@onepipe/core'
import type { AttemptStats } from './retry.js'
import { asRecorded, settledOf, takeable, type ChannelRunner, type Keyed } from './runner.js'
import { claimKey, finishKey, markWaiting, renewKey, takeOverKey, type Outcome } from './store.js'
import { keyTag, NOTIFY, type KeyWaiters } from './waiters.js'

// The lease-mode idempotent path (the default with a key): the first call claims a
// pending row with a lease and renews it while the handler runs, concurrent duplicates
// wait for its outcome through LISTEN/NOTIFY, and a key whose owner died is taken over
// once its lease runs out. Nothing is held open while the handler runs.

/** The idempotent path: claim the key, or wait for / replay its owner's outcome. */
export async function callOnce<O>(ch: ChannelRunner<O>, value: unknown, k: Keyed): Promise<O> {
  const { key, hash, leaseMs, ttlMs } = k
  const db = ch.database
  const waiters = ch.keyWaiters(db)
  const tag = keyTag(ch.name, key)
  for (;;) {
    const waiter = waiters.register(tag)
    try {
      const owner = randomUUID()
      const a = { channel: ch.name, key, hash, owner, leaseMs, ttlMs }
      const claim = await claimKey(db, a)
      if (claim.claimed) return await runOwned(ch, db, value, key, owner, tag, leaseMs)
      const row = claim.row
      if (!row) continue // a concurrent claim committed after this statement's snapshot
      if (takeable(row, hash)) {
        // Expired, or its owner died: whoever takes the row lock first runs it.
        if (await takeOverKey(db, a)) return await runOwned(ch, db, value, key, owner, tag, leaseMs)
        continue
      }
      const settled = settledOf(row, hash)
      if (settled) return ch.replay(settled, key)
      await awaitOwner(ch, db, key, waiter)
    } finally {
      waiter.cancel()
    }
  }
}

/**
 * Waits until the owner of a pending key (alive, its lease running)
 * notifies, the listener reconnects, or the re-check time passes. Listens
 * first, then asks the owner to notify: a key finished in between is seen
 * by `markWaiting`, and one finished after by the notification.
 */
export async function awaitOwner<O>(ch: ChannelRunner<O>, db: Database, key: string, waiter: ReturnType<KeyWaiters['register']>): Promise<void> {
  const waiters = ch.keyWaiters(db)
  await waiters.ready()
  const left = await markWaiting(db, ch.name, key)
  if (left === undefined) return
  await waiter.wait(Math.max(20, Math.min(waiters.recheckMs, left + 20)))
}

/** Runs the handler for a claimed key while renewing its lease, then records the outcome. */
async function runOwned<O>(ch: ChannelRunner<O>, db: Database, value: unknown, key: string, owner: string, tag: string, leaseMs: number): Promise<O> {
  const t0 = performance.now()
  let lost = false
  const renew = setInterval(() => {
    renewKey(db, ch.name, key, owner, leaseMs).then(
      (ok) => {
        if (!ok && !lost) {
          lost = true
          ch.log.warn({ channel: ch.name, key }, 'channel: the idempotency lease was lost while the handler ran (another instance may run it too); make the lease longer than the handler takes')
        }
      },
      (err: unknown) => ch.log.error({ err, channel: ch.name, key }, 'channel: could not renew the idempotency lease'),
    )
  }, Math.max(50, Math.floor(leaseMs / 3)))
  const stats: AttemptStats = { attempts: 0, stillRunning: undefined }
  const finish = async (o: Pick<Outcome, 'status' | 'result' | 'error'>) => {
    const outcome: Outcome = { channel: ch.name, key, owner, notifyChannel: db.channel(NOTIFY), notifyPayload: tag, attempts: stats.attempts, durationMs: Math.round(performance.now() - t0), ...o }
    // The handler already ran: losing its outcome would let a duplicate run it again after the
    // lease, so a transient database error is retried (within the lease) before giving up.
    for (let i = 0; ; i++) {
      try {
        await finishKey(db, outcome)
        return
      } catch (e) {
        if (!isRetryable(e) || i >= 3) throw e
        await new Promise((r) => setTimeout(r, 100 * 2 ** i))
      }
    }
  }
  try {
    const out = await ch.attempts(value, key, stats)
    clearInterval(renew)
    await finish({ status: 'completed', result: out.text ?? null, error: null })
    return out.value
  } catch (err) {
    const status = isRetryable(err) ? 'released' : 'failed'
    const stray = stats.stillRunning
    if (stray) {
      // Keep the key (and its lease) until the stray attempt really ends, so no other run overlaps it.
      const done = stray.then(() => clearInterval(renew)).then(() => finish({ status, result: null, error: serializeError(err) }))
      ch.track(done.catch((e: unknown) => ch.log.error({ err: e, channel: ch.name, key }, 'channel: could not record the outcome of a timed-out call')))
    } else {
      clearInterval(renew)
      await finish({ status, result: null, error: serializeError(err) })
    }
    // A terminal failure is replayed to duplicates: the first caller gets it exactly as they will.
    throw status === 'failed' ? asRecorded(serializeError(err), err) : err
  }
}
