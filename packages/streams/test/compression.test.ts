import { randomBytes } from 'node:crypto'
import { request, type IncomingHttpHeaders } from 'node:http'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MemoryStreamStore, UnbrokenServer, negotiateEncoding } from '../src/index.js'

interface Raw {
  status: number
  headers: IncomingHttpHeaders
  /** The body exactly as it crossed the wire (still compressed). */
  body: Buffer
}

// node:http, not fetch: undici's fetch decodes Content-Encoding on its own,
// which would hide both the bytes on the wire and a wrong header.
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
      .on('error', reject)
      .end()
  })
}

function decode(r: Raw): Buffer {
  const coding = r.headers['content-encoding']
  if (coding === 'gzip') return gunzipSync(r.body)
  if (coding === 'br') return brotliDecompressSync(r.body)
  if (coding !== undefined) throw new Error(`unexpected Content-Encoding ${coding}`)
  return r.body
}

describe('negotiateEncoding', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['identity', undefined],
    ['gzip', 'gzip'],
    ['x-gzip', 'gzip'],
    ['br', 'br'],
    ['gzip, deflate, br', 'br'],
    ['GZIP, BR', 'br'],
    ['br;q=0.5, gzip', 'gzip'],
    ['gzip;q=0.5, br;q=0.9', 'br'],
    ['gzip;q=0', undefined],
    ['gzip; q=0.000', undefined],
    ['br;q=0, gzip', 'gzip'],
    ['*', 'br'],
    ['*;q=0', undefined],
    ['gzip;q=0, *', 'br'],
    ['br;q=0, *;q=0.3', 'gzip'],
    ['deflate', undefined],
    ['gzip;q=2', undefined],
    ['gzip;q=abc, br;q=0.1', 'br'],
    ['identity;q=0', undefined],
  ] as const)('Accept-Encoding %j → %s', (header, want) => {
    expect(negotiateEncoding(header)).toBe(want)
  })
})

describe('compressed catch-up reads', () => {
  const server = new UnbrokenServer({ store: new MemoryStreamStore(), port: 0, longPollTimeoutMs: 200, sseLifetimeMs: 300 })
  let url = ''
  let port = 0
  const PATH = '/v1/stream/catch-up'
  let identity: Raw

  /** A 100-byte JSON message whose `t` varies like a timestamp (so the body is not trivially compressible). */
  function message(i: number): string {
    const t = 1_764_500_000_000 + i * 37.25
    const base = JSON.stringify({ t, p: '' })
    return JSON.stringify({ t, p: 'x'.repeat(100 - base.length) })
  }

  beforeAll(async () => {
    ;({ url, port } = await server.start())
    await fetch(`${url}${PATH}`, { method: 'PUT', headers: { 'content-type': 'application/json' } })
    for (let b = 0; b < 10; b++) {
      const batch = Array.from({ length: 1000 }, (_, i) => message(b * 1000 + i))
      const res = await fetch(`${url}${PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `[${batch.join(',')}]` })
      expect(res.status).toBe(204)
    }
    identity = await get(port, `${PATH}?offset=-1`)
  })
  afterAll(async () => {
    await server.stop()
  })

  it('sends the 10,000-message identity read with a Content-Length and a strong ETag', () => {
    expect(identity.status).toBe(200)
    expect(identity.body.byteLength).toBe(1 + 10_000 * 100 + 9_999 + 1)
    expect((JSON.parse(identity.body.toString('utf8')) as unknown[]).length).toBe(10_000)
    expect(identity.headers['content-encoding']).toBeUndefined()
    expect(identity.headers['content-length']).toBe(String(identity.body.byteLength))
    expect(identity.headers.vary).toBe('Accept-Encoding')
    expect(identity.headers.etag).toMatch(/^"[^"]+"$/)
  })

  it.each(['gzip', 'br'] as const)('a 10,000-message read with Accept-Encoding: %s decodes byte for byte to the identity body', async (coding) => {
    const r = await get(port, `${PATH}?offset=-1`, { 'accept-encoding': coding })
    expect(r.status).toBe(200)
    expect(r.headers['content-encoding']).toBe(coding)
    expect(r.headers.vary).toBe('Accept-Encoding')
    expect(r.headers['content-length']).toBeUndefined()
    expect(r.headers['transfer-encoding']).toBe('chunked')
    expect(r.headers.etag).toBe(`W/${identity.headers.etag}`)
    // The protocol headers are those of the identity read.
    for (const h of ['stream-next-offset', 'stream-up-to-date', 'cache-control', 'content-type']) expect(r.headers[h]).toBe(identity.headers[h])
    expect(decode(r).equals(identity.body)).toBe(true)
    expect(r.body.byteLength).toBeLessThan(identity.body.byteLength / 10)
  })

  it('prefers br when both are accepted equally, and follows q-values otherwise', async () => {
    expect((await get(port, `${PATH}?offset=-1`, { 'accept-encoding': 'gzip, deflate, br' })).headers['content-encoding']).toBe('br')
    expect((await get(port, `${PATH}?offset=-1`, { 'accept-encoding': 'br;q=0.2, gzip;q=0.8' })).headers['content-encoding']).toBe('gzip')
  })

  it.each(['identity', 'gzip;q=0', 'br;q=0, gzip;q=0', '*;q=0', 'deflate'])('Accept-Encoding: %s gets the identity body', async (header) => {
    const r = await get(port, `${PATH}?offset=-1`, { 'accept-encoding': header })
    expect(r.headers['content-encoding']).toBeUndefined()
    expect(r.headers.etag).toBe(identity.headers.etag)
    expect(r.headers.vary).toBe('Accept-Encoding')
    expect(r.body.equals(identity.body)).toBe(true)
  })

  it('answers 304 to If-None-Match with either tag, whichever representation was asked for, without Content-Encoding', async () => {
    const strong = identity.headers.etag as string
    const weak = `W/${strong}`
    for (const [ae, inm, tag] of [
      [undefined, strong, strong],
      ['gzip', weak, weak],
      ['br', weak, weak],
      // Weak comparison: the identity body's tag validates the compressed one, and back.
      ['gzip', strong, weak],
      [undefined, weak, strong],
      ['gzip', `"nope", ${weak}`, weak],
      ['br', '*', weak],
    ] as const) {
      const r = await get(port, `${PATH}?offset=-1`, { 'if-none-match': inm, ...(ae ? { 'accept-encoding': ae } : {}) })
      expect(r.status, `${ae ?? 'identity'} If-None-Match: ${inm}`).toBe(304)
      expect(r.body.byteLength).toBe(0)
      expect(r.headers['content-encoding']).toBeUndefined()
      expect(r.headers.etag).toBe(tag)
      expect(r.headers.vary).toBe('Accept-Encoding')
    }
    const miss = await get(port, `${PATH}?offset=-1`, { 'if-none-match': '"nope"', 'accept-encoding': 'gzip' })
    expect(miss.status).toBe(200)
    expect(decode(miss).equals(identity.body)).toBe(true)
  })

  it('answers a new (weak) ETag after an append, and the old one no longer gives 304', async () => {
    await fetch(`${url}/v1/stream/grows`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'a'.repeat(2000) })
    const before = await get(port, '/v1/stream/grows?offset=-1', { 'accept-encoding': 'gzip' })
    expect(before.headers['content-encoding']).toBe('gzip')
    await fetch(`${url}/v1/stream/grows`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'b'.repeat(10) })
    const after = await get(port, '/v1/stream/grows?offset=-1', { 'accept-encoding': 'gzip', 'if-none-match': before.headers.etag as string })
    expect(after.status).toBe(200)
    expect(after.headers.etag).not.toBe(before.headers.etag)
    expect(after.headers.etag).toMatch(/^W\//)
    expect(decode(after).toString()).toBe(`${'a'.repeat(2000)}${'b'.repeat(10)}`)
  })

  it('sends bodies under 1 KiB as they are, with a Content-Length', async () => {
    await fetch(`${url}/v1/stream/small`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '[{"n":1},{"n":2},{"n":3}]' })
    const r = await get(port, '/v1/stream/small?offset=-1', { 'accept-encoding': 'gzip, br' })
    expect(r.headers['content-encoding']).toBeUndefined()
    expect(r.headers['content-length']).toBe(String(r.body.byteLength))
    expect(r.headers.etag).toMatch(/^"/)
    // Still keyed on Accept-Encoding: the same URL at the tail may grow past the threshold.
    expect(r.headers.vary).toBe('Accept-Encoding')
    expect(r.body.toString()).toBe('[{"n":1},{"n":2},{"n":3}]')
  })

  it('does not compress binary streams', async () => {
    await fetch(`${url}/v1/stream/binary`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.alloc(50_000, 7) })
    const r = await get(port, '/v1/stream/binary?offset=-1', { 'accept-encoding': 'gzip, br' })
    expect(r.headers['content-encoding']).toBeUndefined()
    expect(r.headers.vary).toBeUndefined()
    expect(r.body.byteLength).toBe(50_000)
  })

  it('compresses a long-poll that returns data, not one that times out empty', async () => {
    const tail = identity.headers['stream-next-offset'] as string
    const data = await get(port, `${PATH}?offset=-1&live=long-poll`, { 'accept-encoding': 'gzip' })
    expect(data.status).toBe(200)
    expect(data.headers['content-encoding']).toBe('gzip')
    expect(decode(data).equals(identity.body)).toBe(true)
    const empty = await get(port, `${PATH}?offset=${tail}&live=long-poll`, { 'accept-encoding': 'gzip' })
    expect(empty.status).toBe(204)
    expect(empty.headers['content-encoding']).toBeUndefined()
    expect(empty.body.byteLength).toBe(0)
  })

  it('leaves SSE uncompressed', async () => {
    const r = await get(port, `${PATH}?offset=-1&live=sse`, { 'accept-encoding': 'gzip, br' })
    expect(r.headers['content-type']).toBe('text/event-stream')
    expect(r.headers['content-encoding']).toBeUndefined()
    expect(r.body.toString('utf8')).toContain('event: data\ndata:[{"t":')
  })

  it('compresses in process too (app.request)', async () => {
    const res = await server.app.request(`${PATH}?offset=-1`, { headers: { 'accept-encoding': 'br' } })
    expect(res.headers.get('content-encoding')).toBe('br')
    expect(res.headers.get('etag')).toBe(`W/${identity.headers.etag}`)
    expect(brotliDecompressSync(Buffer.from(await res.arrayBuffer())).equals(identity.body)).toBe(true)
  })

  it('keeps serving when a client leaves in the middle of a compressed body', async () => {
    // Random base64 compresses to about 3/4: many output chunks, so the client leaves with most still to come.
    await fetch(`${url}/v1/stream/noisy`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: randomBytes(700_000).toString('base64') })
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/v1/stream/noisy?offset=-1', headers: { 'accept-encoding': 'gzip' } }, (res) => {
        res.once('data', () => {
          req.destroy()
          resolve()
        })
      })
      req.on('error', (err) => {
        if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err)
      })
      req.end()
    })
    const again = await get(port, `${PATH}?offset=-1`, { 'accept-encoding': 'gzip' })
    expect(decode(again).equals(identity.body)).toBe(true)
  })
})

describe('compression: false', () => {
  it('answers identity whatever the client accepts', async () => {
    const server = new UnbrokenServer({ store: new MemoryStreamStore(), port: 0, compression: false })
    const { url, port } = await server.start()
    try {
      const body = JSON.stringify(Array.from({ length: 100 }, (_, i) => ({ i, note: 'compressible text' })))
      await fetch(`${url}/v1/stream/plain`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body })
      const r = await get(port, '/v1/stream/plain?offset=-1', { 'accept-encoding': 'gzip, br' })
      expect(r.headers['content-encoding']).toBeUndefined()
      expect(r.headers.vary).toBeUndefined()
      expect(r.headers.etag).toMatch(/^"/)
      expect(r.body.toString()).toBe(body)
    } finally {
      await server.stop()
    }
  })
})
