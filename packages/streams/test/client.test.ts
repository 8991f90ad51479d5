import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  MemoryStreamStore,
  StreamClosedError,
  StreamNotFoundError,
  StreamsClient,
  UnbrokenServer,
  type StreamBatch,
} from '../src/index.js'
import { waitFor } from '@onepipe/testing'

describe('StreamsClient', () => {
  const store = new MemoryStreamStore()
  let server: UnbrokenServer
  let client: StreamsClient
  let n = 0
  const name = () => `flows/client-${++n}`

  beforeAll(async () => {
    server = new UnbrokenServer({ store, port: 0, longPollTimeoutMs: 300, ownsStore: false })
    client = new StreamsClient({ url: (await server.start()).url })
  })
  afterAll(async () => {
    await server.stop()
    await store.close()
  })

  it('creates, appends (returning increasing offsets) and reads JSON messages from an offset', async () => {
    const s = client.stream<{ id: number }>(name())
    expect((await s.create()).created).toBe(true)
    expect((await s.create()).created).toBe(false)
    const o1 = await s.append({ id: 1 })
    const o2 = await s.append({ id: 2 })
    const o3 = await s.appendBatch([{ id: 3 }, { id: 4 }])
    expect(o1 < o2 && o2 < o3).toBe(true)
    const all = await s.read()
    expect(all.messages).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }])
    expect(all.offset).toBe(o3)
    expect(all.upToDate).toBe(true)
    const tail = await s.read({ offset: o1 })
    expect(tail.messages).toEqual([{ id: 2 }, { id: 3 }, { id: 4 }])
    const one = await s.read({ offset: '-1', limit: 1 })
    expect(one.messages).toEqual([{ id: 1 }])
    expect(one.offset).toBe(o1)
    expect(one.upToDate).toBe(false)
    expect((await s.read({ offset: 'now' })).messages).toEqual([])
  })

  it('stores an array value as one message', async () => {
    const s = client.stream(name())
    await s.create()
    await s.append([1, 2])
    expect((await s.read()).messages).toEqual([[1, 2]])
  })

  it('reports typed errors: missing stream, closed stream', async () => {
    await expect(client.append('flows/nope-never', { a: 1 })).rejects.toBeInstanceOf(StreamNotFoundError)
    const s = client.stream(name())
    await s.create()
    await s.append({ a: 1 })
    const final = await s.close()
    await expect(s.append({ a: 2 })).rejects.toBeInstanceOf(StreamClosedError)
    const h = await s.head()
    expect(h.closed).toBe(true)
    expect(h.offset).toBe(final)
  })

  it('subscribe: a slow consumer gets every message in order; the client only fetches when asked', async () => {
    const s = client.stream<number>(name())
    await s.create()
    let requests = 0
    const counting = new StreamsClient({
      url: client.url,
      fetch: (input, init) => {
        if ((input instanceof Request ? input.url : input.toString()).includes('live=long-poll')) requests++
        return fetch(input, init)
      },
    })
    const it = counting.subscribe<number>(s.name, { offset: '-1' })
    const total = 60
    let appended = 0
    const producer = (async () => {
      for (let i = 0; i < total; i++) {
        await s.append(i)
        appended++
      }
    })()
    const seen: number[] = []
    let batches = 0
    while (seen.length < total) {
      const r = await it.next()
      expect(r.done).toBe(false)
      batches++
      seen.push(...(r.value as StreamBatch<number>).messages)
      // A slow consumer: it works until the producer is two messages ahead (or done), and
      // nothing is fetched for it meanwhile, so a backlog builds up however fast either side runs.
      const before = requests
      await waitFor(() => appended >= Math.min(total, seen.length + 2), { intervalMs: 5, what: 'the producer to get ahead' })
      expect(requests).toBe(before)
    }
    await producer
    await it.return?.()
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i))
    // Backpressure coalesced the backlog into fewer, larger batches.
    expect(batches).toBeLessThan(total)
    expect(requests).toBe(batches)
  })

  it('subscribe over SSE: a slow consumer gets every message in order, then the end of a closed stream', async () => {
    const s = client.stream<number>(name())
    await s.create()
    const total = 300
    const producer = (async () => {
      for (let i = 0; i < total; i++) await s.append(i, { close: i === total - 1 })
    })()
    const seen: number[] = []
    let batches = 0
    for await (const batch of s.subscribe({ offset: '-1', live: 'sse' })) {
      batches++
      seen.push(...batch.messages)
      await new Promise((res) => setTimeout(res, 5))
    }
    await producer
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i))
    expect(batches).toBeGreaterThan(0)
  })

  it('subscribe ends after the final batch of a closed stream', async () => {
    const s = client.stream<string>(name())
    await s.create()
    await s.append('a')
    await s.append('b', { close: true })
    const got: string[] = []
    for await (const batch of s.subscribe()) got.push(...batch.messages)
    expect(got).toEqual(['a', 'b'])
  })

  it('producer: batches concurrent appends and applies a batch once even when its response is lost', async () => {
    const s = client.stream<number>(name())
    await s.create()
    let lostOnce = false
    const lossy = new StreamsClient({
      url: client.url,
      fetch: async (input, init) => {
        const res = await fetch(input, init)
        // The first producer POST reaches the server, but its answer is "lost".
        if (!lostOnce && init?.method === 'POST') {
          lostOnce = true
          throw new TypeError('fetch failed: socket hang up')
        }
        return res
      },
    })
    const p = lossy.producer(s.name, { id: 'writer-1', retryDelayMs: 5 })
    const offsets = await Promise.all(Array.from({ length: 50 }, (_, i) => p.append(i)))
    await p.flush()
    expect(lostOnce).toBe(true)
    const all = await s.read()
    expect(all.messages).toEqual(Array.from({ length: 50 }, (_, i) => i))
    // 50 appends went out as a handful of batches, each with one offset.
    expect(new Set(offsets).size).toBeLessThan(50)
    expect(offsets.at(-1)).toBe(all.offset)
  })

  it('subscribe stops when its signal aborts while waiting', async () => {
    const s = client.stream(name())
    await s.create()
    const ac = new AbortController()
    const it = s.subscribe({ offset: 'now', signal: ac.signal })
    const pending = it.next()
    setTimeout(() => ac.abort(), 50)
    expect((await pending).done).toBe(true)
  })
})

describe('StreamsClient resume', () => {
  const store = new MemoryStreamStore()
  let server: UnbrokenServer | undefined
  afterEach(async () => {
    await server?.stop()
  })
  afterAll(async () => {
    await store.close()
  })

  it.each(['long-poll', 'sse'] as const)('resumes (%s) from the last offset after the server stops and restarts mid-iteration, without loss or duplicates', async (live) => {
    server = new UnbrokenServer({ store, port: 0, longPollTimeoutMs: 200, ownsStore: false })
    const { port, url } = await server.start()
    const client = new StreamsClient({ url })
    const s = client.stream<number>(`flows/resume-${live}`)
    await s.create()
    for (let i = 0; i < 5; i++) await s.append(i)

    const it = s.subscribe({ offset: '-1', live, retryDelayMs: 20, maxRetryDelayMs: 100 })
    const seen: number[] = []
    const first = await it.next()
    seen.push(...(first.value as StreamBatch<number>).messages)
    expect(seen).toEqual([0, 1, 2, 3, 4])

    // The consumer now waits on a long-poll while the server goes away.
    const waiting = it.next()
    await server.stop()
    await new Promise((res) => setTimeout(res, 100))
    server = new UnbrokenServer({ store, port, longPollTimeoutMs: 200, ownsStore: false })
    await server.start()
    for (let i = 5; i < 10; i++) await s.append(i)

    let r = await waiting
    seen.push(...(r.value as StreamBatch<number>).messages)
    while (seen.length < 10) {
      r = await it.next()
      seen.push(...(r.value as StreamBatch<number>).messages)
    }
    await it.return?.()
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })
})
