import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { ConfigError, Database, Flow, silentLogger, TransportError, ValidationError, type FlowEvent, type RuntimeContext } from '@onepipe/sdk'
import { testCache, testDatabase } from '@onepipe/testing'
import { until } from './until.js'

let db: Database
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterAll(() => cleanup())

const Order = z.object({ id: z.string(), total: z.number().nonnegative() })
let n = 0
const fresh = () => Flow.create(`orders-${++n}`).schema(Order).db(db).build()


describe('Flow on the database', () => {
  it('assigns strictly increasing offsets from 1 and reads them back in order', async () => {
    const f = fresh()
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => f.append({ id: `o${i}`, total: i })))
    const offsets = results.map((r) => r.offset).sort((a, b) => a - b)
    expect(offsets).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
    expect(new Set(results.map((r) => r.id)).size).toBe(50)
    const all = await f.read()
    expect(all.map((e) => e.offset)).toEqual(offsets)
    for (const r of results) expect(all.find((e) => e.offset === r.offset)?.id).toBe(r.id)
    expect(await f.head()).toBe(50)
    expect((await f.read({ offset: 45 })).map((e) => e.offset)).toEqual([46, 47, 48, 49, 50])
    expect((await f.read({ tail: 3 })).map((e) => e.offset)).toEqual([48, 49, 50])
    expect((await f.read({ offset: 10, limit: 2 })).map((e) => e.offset)).toEqual([11, 12])
    expect(all[0]?.timestamp).toBeGreaterThan(Date.now() - 60_000)
  })

  it('rejects invalid events with a ValidationError naming the field; none of them is stored', async () => {
    const f = fresh()
    const err = await f.append({ id: 'x', total: -1 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ValidationError)
    expect((err as ValidationError).issues[0]?.path).toBe('total')
    await expect(f.append(undefined as never)).rejects.toBeInstanceOf(ValidationError)
    await expect(f.append({ id: 'nul\u0000', total: 1 })).rejects.toBeInstanceOf(ValidationError)
    expect((await f.append({ id: 'not nul: \\u0000', total: 1 })).offset).toBe(1)
    expect((await f.read()).map((e) => e.data)).toEqual([{ id: 'not nul: \\u0000', total: 1 }])
    await expect(f.read({ limit: -1 })).rejects.toBeInstanceOf(ValidationError)
  })

  it('throws when the append cannot be stored, and keeps nothing in memory', async () => {
    const { db: other, cleanup: done } = await testDatabase()
    const f = Flow.create('lost').db(other).build()
    await f.append({ a: 1 })
    await done()
    await expect(f.append({ a: 2 })).rejects.toThrow()
    await expect(f.read()).rejects.toThrow()
    const sub = f.subscribe(() => undefined)
    await expect(sub.ready).rejects.toBeInstanceOf(ConfigError)
    await sub()
    // A database that cannot be reached: a retryable TransportError, nothing buffered.
    const down = Database.create('down').postgres('postgres://postgres@127.0.0.1:1/none').build()
    const unreachable = Flow.create('unreachable').db(down).build()
    await expect(unreachable.append({ a: 1 })).rejects.toBeInstanceOf(TransportError)
    await expect(unreachable.append({ a: 2 })).rejects.toMatchObject({ code: 'DB_UNAVAILABLE', retryable: true })
    await down.close()
  })

  it('delivers to subscribers in offset order, from the head or from an offset, and stops on unsubscribe', async () => {
    const f = fresh()
    await f.append({ id: 'before', total: 0 })
    const fromHead: FlowEvent[] = []
    const fromZero: FlowEvent[] = []
    const a = f.subscribe((e) => void fromHead.push(e))
    const b = f.subscribe(
      async (e) => {
        await new Promise((r) => setTimeout(r, 1)) // a slow handler only slows itself
        fromZero.push(e)
      },
      { offset: 0 },
    )
    await a.ready
    await b.ready
    for (let i = 0; i < 20; i++) await f.append({ id: `o${i}`, total: i })
    await until(() => fromHead.length === 20 && fromZero.length === 21)
    expect(fromHead.map((e) => e.offset)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2))
    expect(fromZero.map((e) => e.offset)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1))
    await a()
    await f.append({ id: 'after', total: 1 })
    await until(() => fromZero.length === 22)
    expect(fromHead.length).toBe(20)
    await f.close()
  })

  it('keeps a subscription going when its handler throws, and logs the failure', async () => {
    const f = fresh()
    const errors: unknown[] = []
    const logger = { ...silentLogger, error: (o: object | string) => void errors.push(o), child: () => logger }
    const { cache, cleanup: done } = await testCache()
    await f.attach({ instanceId: 't', db, cache, logger, signal: new AbortController().signal })
    const seen: number[] = []
    const stop = f.subscribe((e) => {
      seen.push(e.offset)
      if (e.offset === 1) throw new Error('boom')
    })
    await stop.ready
    await f.append({ id: 'a', total: 1 })
    await f.append({ id: 'b', total: 2 })
    await until(() => seen.length === 2)
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ offset: 1, err: { message: 'boom' } })
    await stop()
    await f.detach()
    await done()
  })

  it('streams catch-up and live events and stops when the loop breaks', async () => {
    const f = fresh()
    for (let i = 0; i < 5; i++) await f.append({ id: `o${i}`, total: i })
    const caught: number[] = []
    for await (const e of f.stream({ offset: 2 })) caught.push(e.offset)
    expect(caught).toEqual([3, 4, 5])
    const live: number[] = []
    const reading = (async () => {
      for await (const e of f.stream({ live: true, offset: 4 })) {
        live.push(e.offset)
        if (e.offset === 7) break
      }
    })()
    await f.append({ id: 'x', total: 1 })
    await f.append({ id: 'y', total: 2 })
    await reading
    expect(live).toEqual([5, 6, 7])
    await f.close()
  })

  it('sees appends made through another Flow object (another instance) on the same store', async () => {
    const a = Flow.create('shared').db(db).build()
    const b = Flow.create('shared').db(db).build()
    const got: unknown[] = []
    const stop = b.subscribe((e) => void got.push(e.data), { offset: 0 })
    await stop.ready
    await a.append({ from: 'a' })
    await until(() => got.length === 1)
    expect(got).toEqual([{ from: 'a' }])
    await stop()
    await b.close()
  })

  it('enforces retention by count and by age, keeping offsets increasing', async () => {
    const byCount = Flow.create('keep-3').retention({ maxEvents: 3 }).db(db).build()
    for (let i = 0; i < 10; i++) await byCount.append({ i })
    expect(await byCount.sweep()).toBe(7)
    expect((await byCount.read()).map((e) => e.offset)).toEqual([8, 9, 10])
    expect((await byCount.append({ i: 10 })).offset).toBe(11)
    const byAge = Flow.create('short-lived').retention({ maxAge: 600_000 }).db(db).build()
    await byAge.append({ i: 0 })
    // The first event is made an hour old, as if time had passed; the second is seconds old whatever the machine's speed.
    await db.execute(`UPDATE _onepipe_flow_events SET timestamp = timestamp - 3600000 WHERE flow_name = 'short-lived' AND offset_seq = 1`)
    await byAge.append({ i: 1 })
    expect(await byAge.sweep()).toBe(1)
    expect((await byAge.read()).map((e) => e.data)).toEqual([{ i: 1 }])
  })

  it('runs the retention sweep in the background between attach and detach', async () => {
    const { cache, cleanup: done } = await testCache()
    const f = Flow.create('swept').retention({ maxEvents: 2, sweepEvery: 20 }).db(db).build()
    for (let i = 0; i < 5; i++) await f.append({ i })
    const rt: RuntimeContext = { instanceId: 'test', db, cache, logger: silentLogger, signal: new AbortController().signal }
    await f.attach(rt)
    await until(async () => (await f.read()).length <= 2)
    await f.detach()
    expect((await f.read()).map((e) => e.offset)).toEqual([4, 5])
    await done()
  })

  it('refuses bad names', () => {
    expect(() => Flow.create('no spaces')).toThrow(ConfigError)
    expect(() => Flow.create('')).toThrow(ConfigError)
  })
})

describe('Flow over HTTP', () => {
  let flow: Flow<z.infer<typeof Order>>
  const app = new Hono()
  beforeAll(() => {
    flow = Flow.create('http-orders').schema(Order).db(db).build()
    flow.routes(app)
  })
  afterAll(() => flow.close())

  it('appends with POST, reads with GET, rejects bad input with a 400 naming the field', async () => {
    const post = await app.request('/__onepipe/flows/http-orders/events', { method: 'POST', body: JSON.stringify({ id: 'a', total: 3 }), headers: { 'content-type': 'application/json' } })
    expect(post.status).toBe(201)
    expect(await post.json()).toMatchObject({ offset: 1 })
    const bad = await app.request('/__onepipe/flows/http-orders/events', { method: 'POST', body: JSON.stringify({ id: 'a', total: 'x' }), headers: { 'content-type': 'application/json' } })
    expect(bad.status).toBe(400)
    const body = (await bad.json()) as { error: { code: string; details: { issues: { path: string }[] } } }
    expect(body.error.code).toBe('VALIDATION_FAILED')
    expect(body.error.details.issues[0]?.path).toBe('total')
    const notJson = await app.request('/__onepipe/flows/http-orders/events', { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } })
    expect(notJson.status).toBe(400)
    const get = await app.request('/__onepipe/flows/http-orders/events?offset=0&limit=10')
    expect(((await get.json()) as { events: FlowEvent[] }).events.map((e) => e.data)).toEqual([{ id: 'a', total: 3 }])
    expect((await app.request('/__onepipe/flows/http-orders/events?limit=abc')).status).toBe(400)
  })

  it('streams SSE with id = offset and resumes after Last-Event-ID', async () => {
    await flow.append({ id: 'b', total: 4 })
    await flow.append({ id: 'c', total: 5 })
    const res = await app.request('/__onepipe/flows/http-orders/stream', { headers: { 'last-event-id': '1' } })
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/)
    const reader = res.body!.getReader()
    let text = ''
    while (!/id: 3\n/.test(text)) {
      const { value } = await reader.read()
      text += new TextDecoder().decode(value)
    }
    await reader.cancel()
    expect(text).toMatch(/id: 2\ndata: .*"total":4/)
    expect(text).not.toMatch(/id: 1\n/)
    expect((await app.request('/__onepipe/flows/http-orders/stream', { headers: { 'last-event-id': 'x' } })).status).toBe(400)
  })
})
