import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MemoryStreamStore, UnbrokenServer, ZERO_OFFSET, encodeOffset } from '../src/index.js'

// Every bad request gets the protocol's 4xx, a JSON body
// { error: { code, message } }, and leaves the stream exactly as it was.
describe('bad input', () => {
  const server = new UnbrokenServer({ store: new MemoryStreamStore(), maxBodyBytes: 1024 })
  const base = 'http://streams.test/v1/stream/'
  const call = (path: string, init?: RequestInit) => server.app.request(`${base}${path}`, init)

  async function snapshot(path: string) {
    const res = await call(path)
    return { status: res.status, offset: res.headers.get('stream-next-offset'), body: await res.text() }
  }

  async function expectRejected(res: Response, status: number, code?: RegExp) {
    expect(res.status).toBe(status)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    const body = (await res.json()) as { error: { code: string; message: string } }
    expect(body.error.code).toMatch(code ?? /./)
    expect(body.error.message.length).toBeGreaterThan(10)
  }

  beforeAll(async () => {
    await call('flows/bad-json', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '[{"n":1}]' })
    await call('bad-text', { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'hello' })
    await call('bad-text', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'world' })
  })
  afterAll(async () => {
    await server.stop()
  })

  it('malformed JSON on a JSON stream → 400, stream unchanged', async () => {
    const before = await snapshot('flows/bad-json')
    await expectRejected(await call('flows/bad-json', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n": 2' }), 400, /JSON/)
    await expectRejected(await call('flows/bad-json', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[]' }), 400)
    expect(await snapshot('flows/bad-json')).toEqual(before)
    expect(JSON.parse(before.body)).toEqual([{ n: 1 }])
  })

  it('JSON that would not read back as sent (a lone surrogate, a number beyond a double, bytes that are not UTF-8) → 400, stream unchanged', async () => {
    const before = await snapshot('flows/bad-json')
    const post = (body: string | Uint8Array) => call('flows/bad-json', { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    await expectRejected(await post('{"s":"\\ud800"}'), 400, /JSON/)
    await expectRejected(await post('{"\\udc00":1}'), 400, /JSON/)
    await expectRejected(await post('[1, 1e400]'), 400, /JSON/)
    await expectRejected(await post(new Uint8Array([0x22, 0xff, 0xfe, 0x22])), 400, /JSON/)
    expect(await snapshot('flows/bad-json')).toEqual(before)
  })

  it('empty POST → 400, stream unchanged', async () => {
    const before = await snapshot('bad-text')
    await expectRejected(await call('bad-text', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '' }), 400, /EMPTY/)
    expect(await snapshot('bad-text')).toEqual(before)
  })

  it('wrong content type → 409, missing content type → 400, stream unchanged', async () => {
    const before = await snapshot('bad-text')
    await expectRejected(await call('bad-text', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }), 409, /CONTENT_TYPE/)
    await expectRejected(await call('bad-text', { method: 'POST', body: new Uint8Array([1, 2]) }), 400, /CONTENT_TYPE/)
    expect(await snapshot('bad-text')).toEqual(before)
  })

  it('an offset that was never issued → 400 (mid-append, beyond the tail, malformed)', async () => {
    const before = await snapshot('bad-text')
    expect(before.offset).toBe(encodeOffset(2, 10))
    for (const offset of [encodeOffset(0, 3), encodeOffset(1, 6), encodeOffset(2, 11), encodeOffset(9, 99), '12', 'abc', '0000000000000000_000000000000000x']) {
      await expectRejected(await call(`bad-text?offset=${offset}`), 400, /OFFSET/)
      await expectRejected(await call(`bad-text?offset=${offset}&live=long-poll`), 400, /OFFSET/)
    }
    expect((await call(`bad-text?offset=${ZERO_OFFSET}`)).status).toBe(200)
    expect(await snapshot('bad-text')).toEqual(before)
  })

  it('a path with "..", "." or a NUL byte → 400 and nothing is created', async () => {
    for (const p of ['a/..%2Fetc', '..%2Fx', 'a/%2e%2e%2Fb', 'nul%00byte', 'a//b', 'x/%2E']) {
      await expectRejected(await call(p, { method: 'PUT', headers: { 'content-type': 'text/plain' } }), 400, /PATH/)
      await expectRejected(await call(p), 400, /PATH/)
    }
  })

  it('a raw ".." segment on the wire (not normalised away) → 400', async () => {
    const { url } = await server.start()
    try {
      const { port } = new URL(url)
      for (const raw of ['/v1/stream/a/../b', '/v1/stream/../etc/passwd', '/v1/stream/./x']) {
        const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port, path: raw, method: 'PUT', headers: { 'content-type': 'text/plain' } }, (res) => {
            let body = ''
            res.on('data', (c: Buffer) => (body += c.toString()))
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
          })
          req.on('error', reject)
          req.end()
        })
        expect(status).toBe(400)
        expect((JSON.parse(body) as { error: { code: string } }).error.code).toBe('STREAM_BAD_PATH')
      }
      expect((await call('b')).status).toBe(404)
      expect((await call('etc/passwd')).status).toBe(404)
    } finally {
      await server.stop()
    }
  })

  it('an oversized body → 413 (declared or streamed), stream unchanged', async () => {
    const before = await snapshot('bad-text')
    const big = 'x'.repeat(2048)
    await expectRejected(await call('bad-text', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: big }), 413, /TOO_LARGE/)
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 4; i++) c.enqueue(new TextEncoder().encode('y'.repeat(512)))
        c.close()
      },
    })
    await expectRejected(
      await call('bad-text', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: chunked, duplex: 'half' }),
      413,
      /TOO_LARGE/,
    )
    await expectRejected(await call('too-big-create', { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: big }), 413)
    expect((await call('too-big-create')).status).toBe(404)
    expect(await snapshot('bad-text')).toEqual(before)
  })

  it('malformed protocol headers → 400, stream unchanged', async () => {
    const before = await snapshot('bad-text')
    const post = (headers: Record<string, string>) => call('bad-text', { method: 'POST', headers: { 'content-type': 'text/plain', ...headers }, body: 'z' })
    await expectRejected(await post({ 'producer-id': 'p' }), 400, /PRODUCER/)
    await expectRejected(await post({ 'producer-id': 'p', 'producer-epoch': '-1', 'producer-seq': '0' }), 400)
    await expectRejected(await post({ 'producer-id': '', 'producer-epoch': '0', 'producer-seq': '0' }), 400)
    await expectRejected(await call('ttl-bad', { method: 'PUT', headers: { 'stream-ttl': '1.5' } }), 400)
    await expectRejected(await call('ttl-bad', { method: 'PUT', headers: { 'stream-expires-at': 'tomorrow' } }), 400)
    await expectRejected(await call('bad-text?live=forever&offset=-1'), 400)
    await expectRejected(await call('bad-text?limit=0'), 400)
    expect(await snapshot('bad-text')).toEqual(before)
  })

  it('reserved namespaces refuse malformed names → 400', async () => {
    for (const p of ['flows', 'flows/a/b', 'channels/pay', 'channels/pay/other', 'signals/x/y', 'flows/-x']) {
      await expectRejected(await call(p, { method: 'PUT' }), 400, /NAMESPACE/)
    }
  })
})
