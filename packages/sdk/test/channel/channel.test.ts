import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Channel, Database, IdempotencyConflictError, silentLogger, TerminalError, TimeoutError, TransportError, ValidationError, type RuntimeContext } from '@onepipe/sdk'
import { testDatabase, waitFor } from '@onepipe/testing'
import { retryDelay } from '@onepipe/core'
import { pruneCalls, sweepExpired } from '../../src/channel/store.js'

let db: Database
let cleanup: () => Promise<void>
const channels: { close(): Promise<void> }[] = []
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterAll(async () => {
  for (const c of channels) await c.close()
  await cleanup()
})

let n = 0
const unique = (p: string) => `${p}-${++n}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const Payment = z.object({ orderId: z.string(), amount: z.number().positive() })
const ById = z.object({ id: z.string() })
const keep = <T extends { close(): Promise<void> }>(c: T) => (channels.push(c), c)
const expired = async (name: string, key: string) =>
  (await db.query<{ gone: boolean }>('SELECT expires_at <= now() AS gone FROM _onepipe_channel_idempotency WHERE channel_name = $1 AND idempotency_key = $2', [name, key]))[0]?.gone === true
const rows = async (name: string) =>
  (await db.query<{ n: number }>('SELECT (SELECT count(*) FROM _onepipe_channel_idempotency WHERE channel_name = $1) + (SELECT count(*) FROM _onepipe_channel_calls WHERE channel_name = $1) AS n', [name]))[0]!.n

function payments(name = unique('pay'), o: { ttl?: string; lease?: string; delayMs?: number } = {}) {
  const charges: { orderId: string; amount: number }[] = []
  const ch = keep(
    Channel.create(name)
      .input(Payment)
      .db(db)
      .idempotency((i) => i.orderId, { ttl: o.ttl ?? '1h', lease: o.lease ?? '30s' })
      .handler(async (i) => {
        charges.push(i)
        if (o.delayMs) await sleep(o.delayMs)
        return { chargeId: `ch_${charges.length}_${Math.random().toString(36).slice(2)}`, amount: i.amount }
      })
      .build(),
  )
  return { ch, charges, name }
}

describe('Channel idempotency', () => {
  it('runs the first call with a key; later duplicates get the stored result', async () => {
    const { ch, charges } = payments()
    const first = await ch.call({ orderId: 'o1', amount: 99 })
    expect(await ch.call({ orderId: 'o1', amount: 99 })).toEqual(first)
    // Key order in the input does not matter: the validated input is hashed canonically.
    expect(await ch.call({ amount: 99, orderId: 'o1' })).toEqual(first)
    expect(charges).toHaveLength(1)
    await ch.call({ orderId: 'o2', amount: 5 })
    expect(charges).toHaveLength(2)
    const [h] = await ch.history({ limit: 1 })
    expect(h).toMatchObject({ idempotencyKey: 'o2', status: 'completed', attempts: 1 })
  })

  it('concurrent duplicates wait for the first call and are woken by its notification', async () => {
    const name = unique('pay')
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    const charges: number[] = []
    const ch = keep(
      Channel.create(name)
        .input(Payment)
        .db(db)
        .idempotency((i) => i.orderId)
        .handler(async (i) => (charges.push(i.amount), await held, { chargeId: 'first' }))
        .build(),
    )
    // Another object of the same channel stands in for another instance.
    const other = keep(Channel.create(name).input(Payment).db(db).idempotency((i) => i.orderId).handler(() => ({ chargeId: 'never' })).build())
    const notes: string[] = []
    const unlisten = await db.listen('onepipe_channel', (p) => notes.push(p))
    const first = ch.call({ orderId: 'same', amount: 10 })
    await waitFor(() => charges.length === 1, { what: 'the first call to claim the key' })
    const duplicates = Promise.all(Array.from({ length: 19 }, (_, i) => (i % 2 ? other : ch).call({ orderId: 'same', amount: 10 })))
    // The first call holds the key until a duplicate has registered as waiting for it.
    const waiting = async () => (await db.query<{ waiters: boolean }>('SELECT waiters FROM _onepipe_channel_idempotency WHERE channel_name = $1 AND idempotency_key = $2', [name, 'same']))[0]?.waiters
    await waitFor(waiting, { what: 'a duplicate to wait for the key' })
    release()
    const results = [await first, ...(await duplicates)]
    expect(charges).toEqual([10])
    for (const r of results) expect(r).toEqual({ chargeId: 'first' })
    // Finishing the key notified its waiters once (how fast they wake is measured in bench/cron-channel).
    const mine = () => notes.filter((n) => n.startsWith(`${name}\t`))
    await waitFor(() => mine().length > 0, { what: 'the notification of the finished key' })
    expect(mine()).toEqual([`${name}\tsame`])
    await unlisten()
  })

  it('the same key with different input is an IdempotencyConflictError (409), while pending and after', async () => {
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    const charges: number[] = []
    const ch = keep(
      Channel.create(unique('conflict'))
        .input(Payment)
        .db(db)
        .idempotency((i) => i.orderId)
        .handler(async (i) => (charges.push(i.amount), await held, { ok: true }))
        .build(),
    )
    const first = ch.call({ orderId: 'k', amount: 1 })
    // Pending: the first call's handler is running (and holds until released).
    await waitFor(() => charges.length === 1, { what: 'the first call to claim the key' })
    const during = await ch.call({ orderId: 'k', amount: 2 }).catch((e: unknown) => e)
    expect(during).toBeInstanceOf(IdempotencyConflictError)
    expect(during).toMatchObject({ status: 409, code: 'IDEMPOTENCY_CONFLICT' })
    release()
    await first
    await expect(ch.call({ orderId: 'k', amount: 3 })).rejects.toBeInstanceOf(IdempotencyConflictError)
    expect(charges).toEqual([1])
  })

  it('replays the stored result only until the key expires', async () => {
    // Within its TTL (an hour): replayed, however slow the machine.
    const { ch, charges, name } = payments(undefined, { ttl: '1h' })
    const first = await ch.call({ orderId: 'e', amount: 1 })
    expect(await ch.call({ orderId: 'e', amount: 1 })).toEqual(first)
    expect(charges).toHaveLength(1)
    // Past its TTL (300 ms, waited for on the database clock): the key is free again, even for different input.
    const short = payments(name, { ttl: '300ms' })
    await short.ch.call({ orderId: 'f', amount: 1 })
    await waitFor(() => expired(name, 'f'), { what: 'the 300 ms key to expire' })
    await short.ch.call({ orderId: 'f', amount: 2 })
    expect(short.charges.map((c) => c.amount)).toEqual([1, 2])
  })

  it('the sweep deletes expired keys and old history only', async () => {
    const { ch, name } = payments(undefined, { ttl: '1h' })
    const short = payments(name, { ttl: '200ms' })
    await short.ch.call({ orderId: 's1', amount: 1 })
    await waitFor(() => expired(name, 's1'), { what: 'the 200 ms key to expire' })
    await ch.call({ orderId: 's2', amount: 1 })
    expect(await sweepExpired(db, name)).toBe(1)
    await db.execute(`UPDATE _onepipe_channel_calls SET created_at = now() - interval '8 days' WHERE channel_name = $1 AND idempotency_key = 's1'`, [name])
    expect(await pruneCalls(db, name, 7 * 86_400_000)).toBe(1)
    expect((await ch.history()).map((c) => c.idempotencyKey)).toEqual(['s2'])
  })

  it('a pending key whose owner died is taken over once its lease ran out', async () => {
    const name = unique('takeover')
    let release!: () => void
    const blocked = new Promise<void>((r) => (release = r))
    const dying = keep(Channel.create(name).input(Payment).db(db).idempotency((i) => i.orderId, { lease: '300ms' }).handler(async () => (await blocked, { by: 'dying' })).build())
    const survivor = keep(Channel.create(name).input(Payment).db(db).idempotency((i) => i.orderId, { lease: '300ms' }).handler(() => ({ by: 'survivor' })).build())
    const orphan = dying.call({ orderId: 'd', amount: 1 })
    await waitFor(async () => (await db.query(`SELECT 1 FROM _onepipe_channel_idempotency WHERE channel_name = $1 AND status = 'pending'`, [name])).length === 1, {
      what: 'the dying call to claim the key',
    })
    // The owner stops renewing as a dead process would: its lease runs out.
    await db.execute(`UPDATE _onepipe_channel_idempotency SET owner = 'dead-process', lease_expires_at = now() - interval '1 second' WHERE channel_name = $1`, [name])
    expect(await survivor.call({ orderId: 'd', amount: 1 })).toEqual({ by: 'survivor' })
    expect(await dying.call({ orderId: 'd', amount: 1 })).toEqual({ by: 'survivor' })
    release()
    await orphan
  })
})

describe('Channel timeout and retries', () => {
  it('aborts the handler through ctx.signal and retries only after the aborted attempt ended', async () => {
    let active = 0
    let peak = 0
    const aborted: number[] = []
    const ch = keep(
      Channel.create(unique('slow'))
        .timeout('100ms')
        .retry({ attempts: 3, backoff: 'fixed', delay: '10ms' })
        .handler(async (_i, ctx) => {
          active++
          peak = Math.max(peak, active)
          try {
            if (ctx.attempt === 3) return 'third time'
            await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => (aborted.push(ctx.attempt), setTimeout(resolve, 150))))
            return 'too late'
          } finally {
            active--
          }
        })
        .build(),
    )
    expect(await ch.call({})).toBe('third time')
    expect(aborted).toEqual([1, 2])
    expect(peak).toBe(1)
  })

  it('an attempt that ignores the abort fails the call with a TimeoutError and starts no overlapping retry', async () => {
    let started = 0
    let finish!: () => void
    const ch = keep(
      Channel.create(unique('stuck'))
        .input(ById)
        .db(db)
        .idempotency((i) => i.id)
        .timeout('100ms')
        .retry({ attempts: 5, delay: '10ms' })
        .handler(async () => {
          const run = ++started
          // The first run ignores ctx.signal and goes on until the test lets it finish.
          if (run === 1) await new Promise<void>((r) => (finish = r))
          return run
        })
        .build(),
    )
    const err = await ch.call({ id: 'x' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TimeoutError)
    expect(started).toBe(1)
    // The key stays claimed while the stray attempt runs: a duplicate waits instead of overlapping it.
    const dup = ch.call({ id: 'x' })
    await sleep(300)
    expect(started).toBe(1)
    finish()
    // The stray attempt ended: the (retryable) timeout released the key, so the duplicate runs now.
    await expect(dup).resolves.toBe(2)
  })

  it('retries retryable failures with backoff and jitter; a TerminalError stops at once and is replayed to duplicates', async () => {
    let calls = 0
    const flaky = keep(
      Channel.create(unique('flaky'))
        .db(db)
        .retry({ attempts: 4, backoff: 'exponential', delay: '20ms' })
        .handler(() => {
          if (++calls < 3) throw new TransportError('UPSTREAM_DOWN', 'try again')
          return 'ok'
        })
        .build(),
    )
    expect(await flaky.call({})).toBe('ok')
    expect(calls).toBe(3)
    expect((await flaky.history({ limit: 1 }))[0]).toMatchObject({ status: 'completed', attempts: 3, idempotencyKey: null })

    let declines = 0
    const { name } = { name: unique('declined') }
    const strict = keep(
      Channel.create(name)
        .input(Payment)
        .db(db)
        .idempotency((i) => i.orderId)
        .retry({ attempts: 5, delay: '10ms' })
        .handler(() => {
          declines++
          throw new TerminalError('CARD_DECLINED', 'The card was declined')
        })
        .build(),
    )
    await expect(strict.call({ orderId: 't', amount: 1 })).rejects.toMatchObject({ code: 'CARD_DECLINED', status: 422 })
    await expect(strict.call({ orderId: 't', amount: 1 })).rejects.toMatchObject({ code: 'CARD_DECLINED', status: 422 })
    expect(declines).toBe(1)
  })

  it('a retryable failure that used up its attempts releases the key so a later call runs again', async () => {
    let runs = 0
    const ch = keep(
      Channel.create(unique('released'))
        .input(ById)
        .db(db)
        .idempotency((i) => i.id)
        .retry({ attempts: 2, delay: '5ms' })
        .handler(() => {
          if (++runs <= 2) throw new TransportError('DOWN', 'down')
          return 'up'
        })
        .build(),
    )
    await expect(ch.call({ id: 'r' })).rejects.toMatchObject({ code: 'DOWN' })
    expect(await ch.call({ id: 'r' })).toBe('up')
    expect(runs).toBe(3)
  })

  it('computes exponential delays with jitter inside [d/2, d]', () => {
    const p = { attempts: 5, backoff: 'exponential' as const, delayMs: 100, maxDelayMs: 350 }
    for (let i = 0; i < 50; i++) {
      const d2 = retryDelay(p, 1)
      const d3 = retryDelay(p, 2)
      const d5 = retryDelay(p, 4)
      expect(d2).toBeGreaterThanOrEqual(50)
      expect(d2).toBeLessThanOrEqual(100)
      expect(d3).toBeGreaterThanOrEqual(100)
      expect(d3).toBeLessThanOrEqual(200)
      expect(d5).toBeLessThanOrEqual(350)
    }
  })
})

describe('Channel input, failures and HTTP', () => {
  it('bad input is a ValidationError with the field path, and nothing is recorded', async () => {
    const { ch, charges, name } = payments()
    const err = await ch.call({ orderId: 'v', amount: -1 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ValidationError)
    expect((err as ValidationError).issues[0]!.path).toBe('amount')
    expect(charges).toHaveLength(0)
    expect(await rows(name)).toBe(0)
  })

  it('fails closed when the database is unreachable: the handler never runs', async () => {
    const down = Database.create('down').postgres('postgres://postgres@127.0.0.1:1/nowhere').build()
    let ran = 0
    const ch = Channel.create(unique('closed')).input(ById).db(down).idempotency((i) => i.id).handler(() => ++ran).build()
    await expect(ch.call({ id: 'a' })).rejects.toMatchObject({ code: 'DB_UNAVAILABLE', status: 503 })
    expect(ran).toBe(0)
    await ch.close()
    await down.close()
  })

  it('a handler output that breaks its schema is a 500, not the caller’s fault', async () => {
    const ch = Channel.create(unique('out')).output(z.object({ ok: z.boolean() })).handler(() => ({ ok: 'yes' }) as never).build()
    await expect(ch.call({})).rejects.toMatchObject({ code: 'CHANNEL_BAD_OUTPUT', status: 500 })
  })

  it('serves POST /rpc/{name} and GET /rpc/{name} as a Component, on the runtime database', async () => {
    const charges: string[] = []
    const name = unique('http')
    const ch = keep(
      Channel.create(name)
        .input(Payment)
        .idempotency((i) => i.orderId)
        .handler(async (i) => (charges.push(i.orderId), { charged: i.amount }))
        .build(),
    )
    expect(ch.kind).toBe('channel')
    const rt: RuntimeContext = { instanceId: 'test', db, cache: undefined as never, logger: silentLogger, signal: new AbortController().signal }
    const app = new Hono()
    ch.routes(app, rt)
    await ch.attach(rt)
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      app.request(`/rpc/${name}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })
    const ok = await post({ orderId: 'h1', amount: 7 })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toEqual({ result: { charged: 7 } })
    expect(await (await post({ orderId: 'h1', amount: 7 })).json()).toEqual({ result: { charged: 7 } })
    // The header overrides the computed key.
    expect((await post({ orderId: 'h1', amount: 7 }, { 'Idempotency-Key': 'other' })).status).toBe(200)
    expect(charges).toEqual(['h1', 'h1'])
    const conflict = await post({ orderId: 'h1', amount: 8 })
    expect(conflict.status).toBe(409)
    expect(((await conflict.json()) as { error: { code: string } }).error.code).toBe('IDEMPOTENCY_CONFLICT')
    const bad = await post({ orderId: 'h2', amount: 'lots' })
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ error: { code: 'VALIDATION_FAILED', details: { issues: [{ path: 'amount' }] } } })
    expect((await post('not json')).status).toBe(400)
    const hist = await app.request(`/rpc/${name}?limit=5`)
    expect(hist.status).toBe(200)
    const { calls } = (await hist.json()) as { calls: { idempotencyKey: string; status: string }[] }
    expect(calls.map((c) => c.idempotencyKey)).toEqual(['other', 'h1'])
    expect((await app.request(`/rpc/${name}?limit=x`)).status).toBe(400)
    await ch.detach()
  })
})
