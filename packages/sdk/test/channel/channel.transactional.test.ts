import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Channel, ConfigError, Database, IdempotencyConflictError, TerminalError, TimeoutError, TransportError, type TransactionalContext } from '@onepipe/sdk'
import { testDatabase, waitFor } from '@onepipe/testing'

// Transactional channels, on PostgreSQL and on the embedded PGlite (one
// connection: concurrent calls queue on it, and must not deadlock).
let db: Database
let cleanup: () => Promise<void>
const channels: { close(): Promise<void> }[] = []
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
  // No unique constraint: a second run of one key would show as a second row. The CHECK lets a handler's statement fail.
  await db.execute('CREATE TABLE tx_effects (k text NOT NULL, amount int NOT NULL CHECK (amount < 1000))')
})
afterAll(async () => {
  for (const c of channels) await c.close()
  await cleanup()
})

let n = 0
const unique = (p: string) => `${p}-${++n}`
const Payment = z.object({ orderId: z.string(), amount: z.number().int().positive() })
type Payment = z.infer<typeof Payment>
const keep = <T extends { close(): Promise<void> }>(c: T) => (channels.push(c), c)
const effect = (ctx: TransactionalContext, i: Payment) => ctx.tx.execute('INSERT INTO tx_effects (k, amount) VALUES ($1, $2)', [i.orderId, i.amount])
const effects = async (k: string) => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM tx_effects WHERE k = $1', [k]))[0]!.n
const keyRow = async (name: string, key: string) =>
  (await db.query<{ status: string; result: string | null; error: { code: string } | null }>(
    'SELECT status, result::text AS result, error FROM _onepipe_channel_idempotency WHERE channel_name = $1 AND idempotency_key = $2',
    [name, key],
  ))[0]
const gate = () => {
  let open!: () => void
  const opened = new Promise<void>((r) => (open = r))
  return { open, opened }
}

function payments<R>(name: string, fn: (i: Payment, ctx: TransactionalContext) => Promise<R>, o: { ttl?: string; attempts?: number; timeout?: string } = {}) {
  let b = Channel.create(name).input(Payment).db(db).idempotency((i) => i.orderId, { ttl: o.ttl ?? '1h' })
  if (o.attempts) b = b.retry({ attempts: o.attempts, backoff: 'fixed', delay: '5ms' })
  if (o.timeout) b = b.timeout(o.timeout)
  return keep(b.transactional().handler(fn).build())
}

describe('Transactional channel', () => {
  it('commits the claim, the handler’s writes and the result together; replays return the stored result', async () => {
    const name = unique('pay')
    let runs = 0
    const ch = payments(name, async (i, ctx) => {
      runs++
      await effect(ctx, i)
      expect(ctx).not.toHaveProperty('db')
      return { paid: i.amount, run: runs }
    })
    const first = await ch.call({ orderId: 'a', amount: 5 })
    expect(first).toEqual({ paid: 5, run: 1 })
    expect(await ch.call({ orderId: 'a', amount: 5 })).toEqual(first)
    expect(runs).toBe(1)
    expect(await effects('a')).toBe(1)
    expect(await keyRow(name, 'a')).toMatchObject({ status: 'completed', result: '{"run": 1, "paid": 5}' })
    expect(await ch.history()).toMatchObject([{ idempotencyKey: 'a', status: 'completed', attempts: 1 }])
  })

  it('concurrent duplicates on two channel objects run the handler once and all answer its result, without deadlock', async () => {
    const name = unique('dup')
    const held = gate()
    let runs = 0
    const make = () =>
      payments(name, async (i, ctx) => {
        runs++
        await effect(ctx, i)
        await held.opened
        return { run: runs, token: Math.random() }
      })
    // A second object of the same channel stands in for another instance.
    const [a, b] = [make(), make()]
    const input = { orderId: 'same', amount: 7 }
    const first = a.call(input)
    await waitFor(() => runs === 1, { what: 'the first call to run its handler' })
    const duplicates = Promise.all(Array.from({ length: 39 }, (_, i) => (i % 2 ? a : b).call(input)))
    held.open()
    const all = [await first, ...(await duplicates)]
    expect(runs).toBe(1)
    expect(new Set(all.map((r) => JSON.stringify(r))).size).toBe(1)
    expect(await effects('same')).toBe(1)
  })

  it('a terminal failure undoes the handler’s writes, is recorded in the same transaction and replayed without running again', async () => {
    const name = unique('declined')
    let runs = 0
    const ch = payments(name, async (i, ctx) => {
      runs++
      await effect(ctx, i)
      throw new TerminalError('CARD_DECLINED', 'The card was declined')
    })
    await expect(ch.call({ orderId: 't', amount: 1 })).rejects.toMatchObject({ code: 'CARD_DECLINED', status: 422 })
    await expect(ch.call({ orderId: 't', amount: 1 })).rejects.toMatchObject({ code: 'CARD_DECLINED', status: 422 })
    expect(runs).toBe(1)
    expect(await effects('t')).toBe(0)
    expect(await keyRow(name, 't')).toMatchObject({ status: 'failed', error: { code: 'CARD_DECLINED' } })
    expect(await ch.history()).toMatchObject([{ idempotencyKey: 't', status: 'failed', attempts: 1, error: { code: 'CARD_DECLINED' } }])
  })

  it('a statement of the handler that fails (a CHECK) is a terminal failure recorded like any other', async () => {
    const name = unique('check')
    let runs = 0
    const ch = payments(name, async (i, ctx) => {
      runs++
      await ctx.tx.execute('INSERT INTO tx_effects (k, amount) VALUES ($1, $2)', [i.orderId, 1])
      // Violates the CHECK: the transaction is aborted until the savepoint undoes this part.
      await effect(ctx, { ...i, amount: 5000 })
      return 'unreachable'
    })
    await expect(ch.call({ orderId: 'c', amount: 1 })).rejects.toMatchObject({ code: 'DB_CONSTRAINT', status: 409 })
    await expect(ch.call({ orderId: 'c', amount: 1 })).rejects.toMatchObject({ code: 'DB_CONSTRAINT' })
    expect(runs).toBe(1)
    expect(await effects('c')).toBe(0)
    expect(await keyRow(name, 'c')).toMatchObject({ status: 'failed', error: { code: 'DB_CONSTRAINT' } })
  })

  it('a retryable failure rolls everything back, the key included: the next call runs again', async () => {
    const name = unique('released')
    let runs = 0
    const ch = payments(name, async (i, ctx) => {
      await effect(ctx, i)
      if (++runs <= 2) throw new TransportError('UPSTREAM_DOWN', 'try again')
      return { run: runs }
    })
    await expect(ch.call({ orderId: 'r', amount: 1 })).rejects.toMatchObject({ code: 'UPSTREAM_DOWN' })
    expect(await keyRow(name, 'r')).toBeUndefined()
    expect(await effects('r')).toBe(0)
    await expect(ch.call({ orderId: 'r', amount: 1 })).rejects.toMatchObject({ code: 'UPSTREAM_DOWN' })
    expect(await ch.call({ orderId: 'r', amount: 1 })).toEqual({ run: 3 })
    expect(await effects('r')).toBe(1)
    // Each call that ran is in the history, the rolled-back ones too.
    expect((await ch.history()).map((h) => h.status)).toEqual(['completed', 'failed', 'failed'])
  })

  it('retries run each attempt in its own transaction: the writes of failed attempts are gone', async () => {
    const name = unique('retried')
    let runs = 0
    const ch = payments(
      name,
      async (i, ctx) => {
        await effect(ctx, i)
        if (++runs < 3) throw new TransportError('UPSTREAM_DOWN', 'try again')
        return { attempt: runs }
      },
      { attempts: 3 },
    )
    expect(await ch.call({ orderId: 'x', amount: 2 })).toEqual({ attempt: 3 })
    expect(await effects('x')).toBe(1)
    expect(await ch.history()).toMatchObject([{ status: 'completed', attempts: 3 }])
  })

  it('when the result cannot be recorded, nothing commits: not the key, not the handler’s writes', async () => {
    const name = unique('unrecorded')
    let runs = 0
    const ch = payments(name, async (i, ctx) => {
      await effect(ctx, i)
      // Inside this transaction only: the statement that records the result (with its history row) now fails.
      if (++runs === 1) await ctx.tx.execute('ALTER TABLE _onepipe_channel_calls RENAME TO _onepipe_channel_calls_away')
      return { run: runs }
    })
    await expect(ch.call({ orderId: 'n', amount: 1 })).rejects.toMatchObject({ code: 'DB_ERROR' })
    expect(await effects('n')).toBe(0)
    expect(await keyRow(name, 'n')).toBeUndefined()
    expect(await ch.call({ orderId: 'n', amount: 1 })).toEqual({ run: 2 })
    expect(await effects('n')).toBe(1)
  })

  it('the same key with different input is a 409, after the first call and while it runs', async () => {
    const name = unique('conflict')
    const held = gate()
    let runs = 0
    const ch = payments(name, async (i, ctx) => {
      runs++
      await effect(ctx, i)
      await held.opened
      return { amount: i.amount }
    })
    const other = payments(name, () => Promise.resolve({ amount: -1 }))
    const first = ch.call({ orderId: 'k', amount: 1 })
    await waitFor(() => runs === 1, { what: 'the first call to run' })
    // While it runs, calls with other input wait for its outcome (in memory here, on the row lock in `other`).
    const during = [ch.call({ orderId: 'k', amount: 2 }), other.call({ orderId: 'k', amount: 3 })].map((p) => p.catch((e: unknown) => e))
    held.open()
    expect(await first).toEqual({ amount: 1 })
    for (const e of await Promise.all(during)) {
      expect(e).toBeInstanceOf(IdempotencyConflictError)
      expect(e).toMatchObject({ status: 409, code: 'IDEMPOTENCY_CONFLICT' })
    }
    await expect(ch.call({ orderId: 'k', amount: 4 })).rejects.toBeInstanceOf(IdempotencyConflictError)
    expect(runs).toBe(1)
    expect(await effects('k')).toBe(1)
  })

  it('a result that cannot round-trip is a terminal INVALID_RESULT: writes undone, recorded and replayed', async () => {
    const name = unique('invalid')
    let runs = 0
    const ch = payments(name, async (i, ctx) => {
      runs++
      await effect(ctx, i)
      return { at: new Date(0) }
    })
    await expect(ch.call({ orderId: 'v', amount: 1 })).rejects.toMatchObject({ code: 'INVALID_RESULT', status: 500 })
    await expect(ch.call({ orderId: 'v', amount: 1 })).rejects.toMatchObject({ code: 'INVALID_RESULT', status: 500 })
    expect(runs).toBe(1)
    expect(await effects('v')).toBe(0)
    expect(await keyRow(name, 'v')).toMatchObject({ status: 'failed', error: { code: 'INVALID_RESULT' } })
  })

  it('the first caller gets exactly what replays get (undefined stays undefined)', async () => {
    const name = unique('exact')
    const ch = payments(name, async (i, ctx) => {
      await effect(ctx, i)
      return i.amount === 1 ? undefined : { n: i.amount, list: [1, 'two', null], nested: { ok: true } }
    })
    expect(await ch.call({ orderId: 'u', amount: 1 })).toBeUndefined()
    expect(await ch.call({ orderId: 'u', amount: 1 })).toBeUndefined()
    const first = await ch.call({ orderId: 'w', amount: 2 })
    expect(await ch.call({ orderId: 'w', amount: 2 })).toStrictEqual(first)
  })

  it('a timeout aborts through ctx.signal and rolls back: later statements are refused and the key is free', async () => {
    const name = unique('slow')
    let late: unknown
    let runs = 0
    const ch = payments(
      name,
      async (i, ctx) => {
        if (++runs > 1) return (await effect(ctx, i), 'fast')
        await effect(ctx, i)
        await new Promise((r) => ctx.signal.addEventListener('abort', r))
        // The attempt is over: this statement must not run, in the transaction or anywhere else.
        late = await effect(ctx, { ...i, amount: 999 }).catch((e: unknown) => e)
        return 'too late'
      },
      { timeout: '200ms' },
    )
    const err = await ch.call({ orderId: 's', amount: 1 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TimeoutError)
    await waitFor(() => late !== undefined, { what: 'the timed-out handler to try its late statement' })
    expect(late).toMatchObject({ code: 'CHANNEL_TX_CLOSED' })
    expect(await effects('s')).toBe(0)
    expect(await keyRow(name, 's')).toBeUndefined()
    expect(await ch.call({ orderId: 's', amount: 1 })).toBe('fast')
    expect(await effects('s')).toBe(1)
  })

  it('an expired key is taken over inside the transaction; a terminal failure then keeps it (the savepoint follows the takeover)', async () => {
    const name = unique('expired')
    let fail = false
    const ch = payments(
      name,
      async (i, ctx) => {
        await effect(ctx, i)
        if (fail) throw new TerminalError('NOPE', 'no')
        return i.amount
      },
      { ttl: '300ms' },
    )
    expect(await ch.call({ orderId: 'e', amount: 1 })).toBe(1)
    await waitFor(async () => (await db.query<{ gone: boolean }>(`SELECT expires_at <= now() AS gone FROM _onepipe_channel_idempotency WHERE channel_name = $1`, [name]))[0]?.gone, {
      what: 'the 300 ms key to expire',
    })
    fail = true
    await expect(ch.call({ orderId: 'e', amount: 2 })).rejects.toMatchObject({ code: 'NOPE' })
    expect(await keyRow(name, 'e')).toMatchObject({ status: 'failed', error: { code: 'NOPE' } })
    expect(await effects('e')).toBe(1)
  })

  it('waits for a key held by a lease-mode instance of the same channel (a rolling deploy) and answers its result', async () => {
    const name = unique('mixed')
    const held = gate()
    let leaseRuns = 0
    const lease = keep(
      Channel.create(name)
        .input(Payment)
        .db(db)
        .idempotency((i) => i.orderId)
        .handler(async () => (leaseRuns++, await held.opened, { by: 'lease' }))
        .build(),
    )
    let txRuns = 0
    const tx = payments(name, () => (txRuns++, Promise.resolve({ by: 'tx' })))
    const first = lease.call({ orderId: 'm', amount: 1 })
    await waitFor(() => leaseRuns === 1, { what: 'the lease-mode call to claim the key' })
    const waiting = tx.call({ orderId: 'm', amount: 1 })
    await waitFor(async () => (await db.query<{ waiters: boolean }>('SELECT waiters FROM _onepipe_channel_idempotency WHERE channel_name = $1', [name]))[0]?.waiters, {
      what: 'the transactional call to wait for the key',
    })
    held.open()
    expect(await first).toEqual({ by: 'lease' })
    expect(await waiting).toEqual({ by: 'lease' })
    expect(txRuns).toBe(0)
  })

  it('without a key: the handler’s writes and the history row commit together; a failure leaves only the history', async () => {
    const name = unique('plain')
    const ch = keep(
      Channel.create(name)
        .input(Payment)
        .db(db)
        .transactional()
        .handler(async (i, ctx) => {
          await effect(ctx, i)
          if (i.amount === 13) throw new TerminalError('UNLUCKY', 'no')
          return 'ok'
        })
        .build(),
    )
    expect(await ch.call({ orderId: 'p1', amount: 1 })).toBe('ok')
    await expect(ch.call({ orderId: 'p2', amount: 13 })).rejects.toMatchObject({ code: 'UNLUCKY' })
    expect(await effects('p1')).toBe(1)
    expect(await effects('p2')).toBe(0)
    expect(await ch.history()).toMatchObject([
      { idempotencyKey: null, status: 'failed', error: { code: 'UNLUCKY' } },
      { idempotencyKey: null, status: 'completed' },
    ])
  })

  it('.transactional() must come before .handler(), and needs a database', async () => {
    expect(() => Channel.create(unique('order')).handler(() => 1).transactional()).toThrow(ConfigError)
    const ch = Channel.create(unique('nodb')).transactional().handler(() => 1).build()
    await expect(ch.call({})).rejects.toMatchObject({ code: 'CHANNEL_NO_DB' })
  })
})
