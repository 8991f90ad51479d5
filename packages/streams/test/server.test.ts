import { afterAll, describe, expect, it } from 'vitest'
import { MemoryStreamStore, UnbrokenServer, createStore, storeKinds } from '../src/index.js'
import { waitFor } from '@onepipe/testing'

const dec = new TextDecoder()

/** Reads SSE text from a response until `until` appears or the stream ends. */
async function readSse(res: Response, until: string): Promise<string> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  let text = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    text += dec.decode(value)
    if (text.includes(until)) break
  }
  await reader.cancel()
  return text
}

describe('UnbrokenServer in process (app.request)', () => {
  const server = new UnbrokenServer({ store: new MemoryStreamStore(), longPollTimeoutMs: 5_000, sseLifetimeMs: 300 })
  const call = (path: string, init?: RequestInit) => server.app.request(`http://streams.test${path}`, init)
  afterAll(async () => {
    await server.stop()
  })

  it('answers /health with the store kind', async () => {
    const res = await call('/health')
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ status: 'ok', store: 'memory' })
  })

  it("serves OnePipe's namespaces: flows/{name}, channels/{name}/calls, signals/{name}", async () => {
    for (const p of ['/v1/stream/flows/orders', '/v1/stream/channels/payments/calls', '/v1/stream/signals/counter']) {
      const put = await call(p, { method: 'PUT', headers: { 'content-type': 'application/json' } })
      expect(put.status).toBe(201)
      expect(put.headers.get('location')).toBe(`http://streams.test${p}`)
      const post = await call(p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ at: p }) })
      expect(post.status).toBe(204)
      const get = await call(`${p}?offset=-1`)
      expect(await get.json()).toEqual([{ at: p }])
    }
  })

  it('wakes a waiting long-poll from the store notification, not its timeout', async () => {
    // A store that shows when the long-poll watches it and has read it, so the append comes while it waits.
    class Watched extends MemoryStreamStore {
      watching = 0
      readsWhileWatched = 0
      override watch(path: string, listener: () => void): () => void {
        this.watching++
        const unwatch = super.watch(path, listener)
        return () => {
          this.watching--
          unwatch()
        }
      }
      override async read(path: string, options: Parameters<MemoryStreamStore['read']>[1]): ReturnType<MemoryStreamStore['read']> {
        const r = await super.read(path, options)
        if (this.watching > 0) this.readsWhileWatched++
        return r
      }
    }
    const watched = new Watched()
    // The long-poll would time out only after 10 minutes: an answer within the test's deadline is the wake-up.
    const s = new UnbrokenServer({ store: watched, longPollTimeoutMs: 600_000 })
    try {
      const at = (path: string, init?: RequestInit) => s.app.request(`http://streams.test${path}`, init)
      await at('/v1/stream/flows/wake', { method: 'PUT', headers: { 'content-type': 'application/json' } })
      const tail = (await at('/v1/stream/flows/wake', { method: 'HEAD' })).headers.get('stream-next-offset') ?? ''
      const pending = at(`/v1/stream/flows/wake?offset=${tail}&live=long-poll`)
      await waitFor(() => watched.watching === 1 && watched.readsWhileWatched > 0, { what: 'the long-poll to wait' })
      await at('/v1/stream/flows/wake', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' })
      const res = await pending
      expect(res.status).toBe(200)
      expect(await res.json()).toEqual([{ n: 1 }])
      expect(res.headers.get('stream-cursor')).toMatch(/^\d+$/)
    } finally {
      await s.stop()
    }
  })

  it('streams SSE: data then control for catch-up, then live appends, then ends at its lifetime', async () => {
    // The live part on a server whose connections outlive any slow machine; the lifetime part below uses the 300 ms one.
    const long = new UnbrokenServer({ store: new MemoryStreamStore(), sseLifetimeMs: 600_000 })
    let text = ''
    try {
      const at = (path: string, init?: RequestInit) => long.app.request(`http://streams.test${path}`, init)
      await at('/v1/stream/flows/sse', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '[{"n":1},{"n":2}]' })
      const res = await at('/v1/stream/flows/sse?offset=-1&live=sse')
      expect(res.headers.get('content-type')).toBe('text/event-stream')
      const reader = (res.body as ReadableStream<Uint8Array>).getReader()
      const readUntil = async (s: string) => {
        while (!text.includes(s)) {
          const { done, value } = await reader.read()
          if (done) throw new Error(`the stream ended before ${s}: ${text}`)
          text += dec.decode(value)
        }
      }
      // Caught up (the control event) before the live append.
      await readUntil('event: control')
      await at('/v1/stream/flows/sse', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":3}' })
      await readUntil('"n":3')
      await reader.cancel()
    } finally {
      await long.stop()
    }
    const events = text.split('\n\n').filter(Boolean)
    expect(events[0]).toBe('event: data\ndata:[{"n":1},{"n":2}]')
    expect(events[1]).toMatch(/^event: control\ndata:\{"streamNextOffset":"\d{16}_\d{16}","streamCursor":"\d+","upToDate":true\}$/)
    expect(events[2]).toBe('event: data\ndata:[{"n":3}]')

    // With no traffic the connection ends at sseLifetimeMs (300 ms here).
    await call('/v1/stream/flows/sse', { method: 'PUT', headers: { 'content-type': 'application/json' } })
    const idle = await call('/v1/stream/flows/sse?offset=now&live=sse')
    const all = await readSse(idle, 'never-appears')
    expect(all).toContain('"upToDate":true')
  })

  it('answers 304 to a matching If-None-Match and a new ETag after an append', async () => {
    await call('/v1/stream/flows/etag', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
    const first = await call('/v1/stream/flows/etag?offset=-1')
    const etag = first.headers.get('etag') ?? ''
    expect((await call('/v1/stream/flows/etag?offset=-1', { headers: { 'if-none-match': etag } })).status).toBe(304)
    await call('/v1/stream/flows/etag', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":2}' })
    const again = await call('/v1/stream/flows/etag?offset=-1', { headers: { 'if-none-match': etag } })
    expect(again.status).toBe(200)
    expect(again.headers.get('etag')).not.toBe(etag)
  })

  it('caps one read by maxReadBytes and pages through the rest', async () => {
    const small = new UnbrokenServer({ store: new MemoryStreamStore(), maxReadBytes: 10 })
    const c = (p: string, init?: RequestInit) => small.app.request(`http://s.test/v1/stream/${p}`, init)
    await c('paged', { method: 'PUT', headers: { 'content-type': 'text/plain' } })
    for (const part of ['aaaaaa', 'bbbbbb', 'cccccc']) await c('paged', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: part })
    let offset = '-1'
    const pages: string[] = []
    for (;;) {
      const res = await c(`paged?offset=${offset}`)
      pages.push(await res.text())
      offset = res.headers.get('stream-next-offset') ?? ''
      if (res.headers.get('stream-up-to-date') === 'true') break
    }
    expect(pages).toEqual(['aaaaaa', 'bbbbbb', 'cccccc'])
    await small.stop()
  })

  it('ends waiting long-polls when the server stops', async () => {
    const s = new UnbrokenServer({ store: new MemoryStreamStore(), longPollTimeoutMs: 60_000 })
    await s.app.request('http://s.test/v1/stream/x', { method: 'PUT' })
    const pending = s.app.request('http://s.test/v1/stream/x?offset=now&live=long-poll')
    await new Promise((r) => setTimeout(r, 20))
    await s.stop()
    expect((await pending).status).toBe(204)
  })

  it('fans one append out to 30 SSE readers over real sockets, without listener warnings', async () => {
    const s = new UnbrokenServer({ store: new MemoryStreamStore(), port: 0, sseLifetimeMs: 5_000 })
    const warnings: string[] = []
    const onWarning = (w: Error) => warnings.push(w.name)
    process.on('warning', onWarning)
    try {
      const { url } = await s.start()
      const stream = `${url}/v1/stream/flows/fan`
      await fetch(stream, { method: 'PUT', headers: { 'content-type': 'application/json' } })
      const tail = (await fetch(stream, { method: 'HEAD' })).headers.get('stream-next-offset') ?? ''
      const readers = await Promise.all(Array.from({ length: 30 }, () => fetch(`${stream}?offset=${tail}&live=sse`)))
      const got = readers.map((r) => readSse(r, '"fan":1'))
      await fetch(stream, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"fan":1}' })
      for (const text of await Promise.all(got)) expect(text).toContain('event: data\ndata:[{"fan":1}]')
    } finally {
      await s.stop()
      process.off('warning', onWarning)
    }
    expect(warnings).toEqual([])
  })

  it('creates stores by kind through the registry', async () => {
    expect(storeKinds()).toContain('memory')
    const store = await createStore('memory')
    expect(store.kind).toBe('memory')
    await store.close()
    await expect(createStore('nope')).rejects.toThrow(/Unknown streams store "nope"/)
  })
})
