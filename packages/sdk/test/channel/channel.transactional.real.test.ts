import { hostname } from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Channel, Database, TimeoutError, type TransactionalContext } from '@onepipe/sdk'
import { testDatabase, waitFor } from '@onepipe/testing'

// What only PostgreSQL can show: other sessions while a transactional handler
// runs (PGlite has one connection, so nothing else runs meanwhile), the pool,
// and statement limits.
let db: Database
let schema: string
let url: string | undefined
let cleanup: () => Promise<void>
const closers: { close(): Promise<void> }[] = []
beforeAll(async () => {
  ;({ db, schema, url, cleanup } = await testDatabase({ backend: 'real' }))
  await db.execute('CREATE TABLE tx_effects (k text NOT NULL, amount int NOT NULL)')
})
afterAll(async () => {
  for (const c of closers.reverse()) await c.close()
  await cleanup()
})

let n = 0
const unique = (p: string) => `${p}-${++n}`
const Payment = z.object({ orderId: z.string(), amount: z.number().int().positive() })
type Payment = z.infer<typeof Payment>
const keep = <T extends { close(): Promise<void> }>(c: T) => (closers.push(c), c)
const effect = (ctx: TransactionalContext, i: Payment) => ctx.tx.execute('INSERT INTO tx_effects (k, amount) VALUES ($1, $2)', [i.orderId, i.amount])
const effects = async (k: string) => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM tx_effects WHERE k = $1', [k]))[0]!.n
const gate = () => {
  let open!: () => void
  const opened = new Promise<void>((r) => (open = r))
  return { open, opened }
}

describe('Transactional channel on PostgreSQL', () => {
  it('nothing of the call is visible to other sessions before its commit: not the key, not the handler’s writes', async () => {
    const name = unique('visible')
    const held = gate()
    let wrote = false
    const ch = keep(
      Channel.create(name)
        .input(Payment)
        .db(db)
        .idempotency((i) => i.orderId)
        .transactional()
        .handler(async (i, ctx) => {
          await effect(ctx, i)
          wrote = true
          await held.opened
          return 'ok'
        })
        .build(),
    )
    const call = ch.call({ orderId: 'v', amount: 1 })
    await waitFor(() => wrote, { what: 'the handler to write' })
    expect(await effects('v')).toBe(0)
    expect(await db.query('SELECT 1 FROM _onepipe_channel_idempotency WHERE channel_name = $1', [name])).toEqual([])
    held.open()
    expect(await call).toBe('ok')
    expect(await effects('v')).toBe(1)
    expect(await db.query<{ status: string }>('SELECT status FROM _onepipe_channel_idempotency WHERE channel_name = $1', [name])).toEqual([{ status: 'completed' }])
  })

  it('duplicates wait without a connection each: in memory within an instance, one blocked on the key per other instance', async () => {
    // Three connections: the owner's, one for the other instance's duplicate, one left for other work.
    const small = keep(Database.create('small').postgres(url!).schema(schema).pool({ max: 3 }).build())
    const name = unique('pool')
    const held = gate()
    let runs = 0
    const make = () =>
      keep(
        Channel.create(name)
          .input(Payment)
          .db(small)
          .idempotency((i) => i.orderId)
          .transactional()
          .handler(async (i, ctx) => {
            await effect(ctx, i)
            if (i.orderId !== 'held') return 'other'
            runs++
            await held.opened
            return 'held'
          })
          .build(),
      )
    const [a, b] = [make(), make()]
    const input = { orderId: 'held', amount: 1 }
    const first = a.call(input)
    await waitFor(() => runs === 1, { what: 'the owner to run' })
    const duplicates = Promise.all(Array.from({ length: 40 }, (_, i) => (i % 4 === 0 ? b : a).call(input)))
    const lockWaits = async () =>
      (
        await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = $1`, [
          `onepipe:small@${hostname()}:${process.pid}`,
        ])
      )[0]!.n
    await waitFor(async () => (await lockWaits()) === 1, { what: "the other instance's duplicate to block on the key" })
    // With the duplicates holding no connection, the third one still serves another key.
    expect(await a.call({ orderId: 'free', amount: 2 })).toBe('other')
    expect(await lockWaits()).toBe(1)
    held.open()
    expect(new Set([await first, ...(await duplicates)])).toEqual(new Set(['held']))
    expect(runs).toBe(1)
    expect(await effects('held')).toBe(1)
  })

  it('a handler stuck in a long statement past its timeout is cut off by the statement limit, and everything rolls back', async () => {
    const name = unique('stuck')
    const ch = keep(
      Channel.create(name)
        .input(Payment)
        .db(db)
        .idempotency((i) => i.orderId)
        .timeout('300ms')
        .transactional()
        .handler(async (i, ctx) => {
          await effect(ctx, i)
          // Ignores ctx.signal inside one statement: without the limit the call would wait ten minutes for it.
          await ctx.tx.query('SELECT pg_sleep(600)')
          return 'never'
        })
        .build(),
    )
    await expect(ch.call({ orderId: 's', amount: 1 })).rejects.toBeInstanceOf(TimeoutError)
    expect(await effects('s')).toBe(0)
    expect(await db.query('SELECT 1 FROM _onepipe_channel_idempotency WHERE channel_name = $1', [name])).toEqual([])
  })
})
