import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { ConfigError, Flow, ValidationError, type FlowEvent } from '@onepipe/sdk'
import { MemoryStreamStore, StreamsClient, UnbrokenServer } from '@onepipe/streams'
import { until } from './until.js'

// The streams server in process; clients reach it through its Hono app.
const server = new UnbrokenServer({ store: new MemoryStreamStore(), longPollTimeoutMs: 300, sweepIntervalMs: 0 })
const client = () => new StreamsClient({ url: 'http://streams.test', fetch: ((u: string, i?: RequestInit) => server.app.request(u, i)) as typeof fetch })
afterAll(() => server.stop())


describe('Flow in the streams server (no .db())', () => {
  it('gets offsets 1, 2, 3… from the server and reads them back from any offset', async () => {
    const f = Flow.create('s-orders').schema(z.object({ n: z.number() })).streams(client()).build()
    expect(f.storage).toBe('streams')
    expect(await f.head()).toBe(0)
    expect(await f.read()).toEqual([])
    const results = []
    for (let n = 1; n <= 12; n++) results.push(await f.append({ n }))
    expect(results.map((r) => r.offset)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1))
    expect(await f.head()).toBe(12)
    expect((await f.read({ offset: 9 })).map((e) => [e.offset, e.data])).toEqual([
      [10, { n: 10 }],
      [11, { n: 11 }],
      [12, { n: 12 }],
    ])
    expect((await f.read({ tail: 2 })).map((e) => e.offset)).toEqual([11, 12])
    // Another instance, knowing none of the server's offsets yet, reads from the middle.
    const other = Flow.create('s-orders').streams(client()).build()
    expect((await other.read({ offset: 5, limit: 2 })).map((e) => e.offset)).toEqual([6, 7])
    expect((await other.read({ offset: 50 })).length).toBe(0)
    await expect(f.append({ n: 'x' } as never)).rejects.toBeInstanceOf(ValidationError)
    expect(await f.head()).toBe(12)
  })

  it('delivers appends of another instance to subscribers, in order, and streams live', async () => {
    const writer = Flow.create('s-live').streams(client()).build()
    const reader = Flow.create('s-live').streams(client()).build()
    await writer.append({ i: 0 })
    const got: FlowEvent[] = []
    const stop = reader.subscribe((e) => void got.push(e))
    await stop.ready
    for (let i = 1; i <= 5; i++) await writer.append({ i })
    await until(() => got.length === 5)
    expect(got.map((e) => [e.offset, e.data])).toEqual([1, 2, 3, 4, 5].map((i) => [i + 1, { i }]))
    const live: number[] = []
    for await (const e of reader.stream({ live: true, offset: 4 })) {
      live.push(e.offset)
      if (live.length === 2) void writer.append({ i: 6 })
      if (e.offset === 7) break
    }
    expect(live).toEqual([5, 6, 7])
    await stop()
    await reader.close()
    await writer.close()
  })

  it('refuses retention without .db(), and fails appends loudly when the server is unreachable', async () => {
    expect(() => Flow.create('s-ret').retention({ maxEvents: 3 }).build()).toThrow(ConfigError)
    const down = Flow.create('s-down').streams(new StreamsClient({ url: 'http://127.0.0.1:9' })).build()
    await expect(down.append({ a: 1 })).rejects.toMatchObject({ code: 'STREAMS_UNREACHABLE' })
  })
})
