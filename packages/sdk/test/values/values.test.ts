import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Channel, Cron, Database, Flow, Signal, TerminalError, ValidationError } from '@onepipe/sdk'
import { MemoryStreamStore, StreamsClient, UnbrokenServer } from '@onepipe/streams'
import { testDatabase } from '@onepipe/testing'

// Issue examples, each as a test: a value either round-trips exactly or is
// refused with a ValidationError naming the path, before anything is stored;
// one refused value never fails its batch neighbours; a value the app's own
// code produced fails that call or tick once, with the reason recorded.
let db: Database
let cleanup: () => Promise<void>
const closers: { close(): Promise<void> }[] = []
const keep = <T extends { close(): Promise<void> } | { stop(): Promise<void> }>(c: T) => (closers.push('close' in c ? c : { close: () => c.stop() }), c)
const server = new UnbrokenServer({ store: new MemoryStreamStore(), longPollTimeoutMs: 300, sweepIntervalMs: 0 })
const streams = () => new StreamsClient({ url: 'http://streams.test', fetch: ((u: string, i?: RequestInit) => server.app.request(u, i)) as typeof fetch })
let n = 0
const unique = (p: string) => `${p}-${++n}`

beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterAll(async () => {
  for (const c of closers) await c.close()
  await server.stop()
  await cleanup()
})

async function refused(p: Promise<unknown> | (() => unknown), path: string): Promise<ValidationError> {
  let err: unknown
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    err = e
  }
  expect(err).toBeInstanceOf(ValidationError)
  expect((err as ValidationError).issues.map((i) => i.path)).toContain(path)
  return err as ValidationError
}

for (const where of ['database', 'streams server'] as const) {
  describe(`flow values (${where})`, () => {
    const flow = () => keep(where === 'database' ? Flow.create(unique('vals')).db(db).build() : Flow.create(unique('vals')).streams(streams()).build())

    it('refuses NaN and Infinity, functions and symbols with a ValidationError naming the path, storing nothing', async () => {
      const f = flow()
      await refused(f.append({ x: NaN, y: Infinity }), 'x')
      await refused(f.append({ x: 1, y: Infinity }), 'y')
      await refused(f.append(() => 1), '')
      await refused(f.append(Symbol('s')), '')
      await refused(f.append({ at: new Date() }), 'at')
      expect(await f.read()).toEqual([])
    })

    it('a lone surrogate is refused and the 19 valid appends batched with it are all stored', async () => {
      const f = flow()
      const all = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => f.append(i === 7 ? { s: 'x\ud800y' } : { i })))
      expect(all.filter((r) => r.status === 'rejected')).toHaveLength(1)
      expect((all[7] as PromiseRejectedResult).reason).toBeInstanceOf(ValidationError)
      const stored = (await f.read()).map((e) => e.data as { i: number })
      expect(stored.map((d) => d.i).sort((a, b) => a - b)).toEqual([...Array(20).keys()].filter((i) => i !== 7))
    })

    it('refuses a negative subscribe offset as read does', async () => {
      const f = flow()
      expect(() => f.subscribe(() => undefined, { offset: -1 })).toThrow(ValidationError)
      await expect(f.read({ offset: -1 })).rejects.toBeInstanceOf(ValidationError)
    })
  })
}

describe('signal values', () => {
  it('refuses NaN, a function and a lone surrogate; the stored value stays as it was', async () => {
    const s = keep(Signal.create(unique('sig')).db(db).default<unknown>(1).build())
    await s.set(5)
    await refused(s.set(NaN), '')
    await refused(s.set(() => 1), '')
    await refused(s.set({ name: 'x\ud800y' }), 'name')
    expect(await s.read()).toEqual({ value: 5, version: 1 })
  })
})

describe('channel results', () => {
  it('a handler returning a Date fails the call with INVALID_RESULT once; the duplicate gets the same error and the handler ran once', async () => {
    let runs = 0
    const ch = keep(Channel.create(unique('date')).db(db).idempotency((i) => (i as { k: string }).k).handler(() => (runs++, { confirmedAt: new Date() })).build())
    const first = await refused(ch.call({ k: 'a' }), 'confirmedAt')
    expect(first).toMatchObject({ code: 'INVALID_RESULT', status: 500, retryable: false })
    await expect(ch.call({ k: 'a' })).rejects.toMatchObject({ code: 'INVALID_RESULT' })
    expect(runs).toBe(1)
  })

  it('the first caller and every replay see the same value: undefined stays undefined, an ISO string stays a string', async () => {
    const none = keep(Channel.create(unique('void')).db(db).idempotency((i) => (i as { k: string }).k).handler(() => undefined).build())
    expect(await none.call({ k: 'a' })).toBeUndefined()
    expect(await none.call({ k: 'a' })).toBeUndefined()
    const at = new Date(0).toISOString()
    const iso = keep(Channel.create(unique('iso')).db(db).idempotency((i) => (i as { k: string }).k).handler(() => ({ confirmedAt: at, note: undefined, n: null })).build())
    const a = await iso.call({ k: 'a' })
    const b = await iso.call({ k: 'a' })
    expect(b).toStrictEqual(a)
    expect(a).toStrictEqual({ confirmedAt: at, n: null })
  })

  it('a handler returning a string with NUL fails with INVALID_RESULT (not a 500 DB error that replays), once', async () => {
    let runs = 0
    const ch = keep(Channel.create(unique('nul')).db(db).idempotency((i) => (i as { k: string }).k).handler(() => (runs++, 'a\u0000b')).build())
    await expect(ch.call({ k: 'a' })).rejects.toMatchObject({ code: 'INVALID_RESULT' })
    await expect(ch.call({ k: 'a' })).rejects.toMatchObject({ code: 'INVALID_RESULT' })
    expect(runs).toBe(1)
  })

  it('refuses input that cannot round-trip with a 400 before running anything', async () => {
    let runs = 0
    const ch = keep(Channel.create(unique('in')).db(db).handler(() => void runs++).build())
    const err = await refused(ch.call({ x: NaN }), 'x')
    expect(err.status).toBe(400)
    expect(runs).toBe(0)
  })
})

describe('cron outputs and thrown values', () => {
  it('an output with NUL fails the tick with INVALID_RESULT recorded, not abandoned', async () => {
    const job = keep(Cron.create(unique('nul')).schedule('0 0 1 1 *').db(db).handler(() => ({ s: 'a\u0000b' })).build())
    const run = await job.trigger()
    expect(run.status).toBe('failed')
    expect(run.error).toMatchObject({ code: 'INVALID_RESULT' })
  })

  it('a thrown plain object keeps its fields; an object without a prototype is recorded; a TerminalError message with NUL is stored escaped', async () => {
    const plain = keep(Cron.create(unique('obj')).schedule('0 0 1 1 *').db(db).handler(() => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- apps do throw plain objects; OnePipe must keep their fields
      throw { code: 'CARD_DECLINED', reason: 'expired' }
    }).build())
    expect((await plain.trigger()).error).toMatchObject({ code: 'CARD_DECLINED', message: 'expired', details: { reason: 'expired' } })
    const bare = keep(Cron.create(unique('bare')).schedule('0 0 1 1 *').db(db).handler(() => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- an object without a prototype must not crash the recording
      throw Object.assign(Object.create(null) as object, { code: 'NO_PROTO', message: 'thrown bare' })
    }).build())
    expect((await bare.trigger()).error).toMatchObject({ code: 'NO_PROTO', message: 'thrown bare' })
    const term = keep(Cron.create(unique('term')).schedule('0 0 1 1 *').db(db).handler(() => {
      throw new TerminalError('BAD', 'a\u0000b')
    }).build())
    const run = await term.trigger()
    expect(run.status).toBe('failed')
    expect(run.error).toMatchObject({ code: 'BAD', message: 'a\\u0000b' })
  })
})
