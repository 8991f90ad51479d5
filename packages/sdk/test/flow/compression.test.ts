import { request, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { serve, type ServerType } from '@hono/node-server'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Flow, compressedJson, type Database } from '@onepipe/sdk'
import { testDatabase } from '@onepipe/testing'

interface Raw {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

// node:http, not fetch: undici's fetch decodes Content-Encoding itself and would hide the bytes on the wire.
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

let db: Database
let cleanup: () => Promise<void>
let flow: Flow<{ i: number; note: string }>
let server: ServerType
let port = 0
const EVENTS = '/__onepipe/flows/compressed/events'

beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
  flow = Flow.create('compressed').db(db).build() as Flow<{ i: number; note: string }>
  for (let b = 0; b < 10; b++) await Promise.all(Array.from({ length: 50 }, (_, k) => flow.append({ i: b * 50 + k, note: `order ${b * 50 + k} placed` })))
  const app = new Hono()
  flow.routes(app)
  app.get('/small', (c) => compressedJson(c, { ok: true }, 201))
  server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
  await new Promise<void>((resolve) => server.once('listening', () => resolve()))
  port = (server.address() as AddressInfo).port
})
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await flow.close()
  await cleanup()
})

describe('GET /__onepipe/flows/{name}/events compression', () => {
  it.each(['gzip', 'br'] as const)('a page of 500 events with Accept-Encoding: %s decodes byte for byte to the identity page', async (coding) => {
    const identity = await get(port, `${EVENTS}?offset=0&limit=500`)
    expect(identity.status).toBe(200)
    expect(identity.headers['content-encoding']).toBeUndefined()
    expect(identity.headers.vary).toBe('Accept-Encoding')
    const page = JSON.parse(identity.body.toString('utf8')) as { events: unknown[]; nextOffset: number }
    expect(page.events).toHaveLength(500)
    expect(page.nextOffset).toBe(500)

    const r = await get(port, `${EVENTS}?offset=0&limit=500`, { 'accept-encoding': coding })
    expect(r.status).toBe(200)
    expect(r.headers['content-encoding']).toBe(coding)
    expect(r.headers['content-type']).toMatch(/^application\/json/)
    expect(r.headers.vary).toBe('Accept-Encoding')
    expect(r.headers['content-length']).toBeUndefined()
    expect(decode(r).equals(identity.body)).toBe(true)
    expect(r.body.byteLength).toBeLessThan(identity.body.byteLength / 3)
  })

  it.each(['identity', 'gzip;q=0', '*;q=0', 'deflate'])('Accept-Encoding: %s gets the identity page', async (header) => {
    const r = await get(port, `${EVENTS}?offset=0&limit=500`, { 'accept-encoding': header })
    expect(r.headers['content-encoding']).toBeUndefined()
    expect((JSON.parse(r.body.toString('utf8')) as { events: unknown[] }).events).toHaveLength(500)
  })

  it('follows q-values and prefers br on a tie', async () => {
    expect((await get(port, `${EVENTS}?limit=500`, { 'accept-encoding': 'gzip, deflate, br' })).headers['content-encoding']).toBe('br')
    expect((await get(port, `${EVENTS}?limit=500`, { 'accept-encoding': 'br;q=0.1, gzip' })).headers['content-encoding']).toBe('gzip')
  })

  it('sends pages under 1 KiB as they are', async () => {
    const r = await get(port, `${EVENTS}?offset=0&limit=2`, { 'accept-encoding': 'gzip, br' })
    expect(r.status).toBe(200)
    expect(r.headers['content-encoding']).toBeUndefined()
    expect(r.headers.vary).toBe('Accept-Encoding')
    expect((JSON.parse(r.body.toString('utf8')) as { events: unknown[] }).events).toHaveLength(2)
    const small = await get(port, '/small', { 'accept-encoding': 'gzip' })
    expect(small.status).toBe(201)
    expect(small.headers['content-encoding']).toBeUndefined()
    expect(small.body.toString()).toBe('{"ok":true}')
  })

  it('leaves errors and the SSE stream uncompressed', async () => {
    const bad = await get(port, `${EVENTS}?limit=abc`, { 'accept-encoding': 'gzip' })
    expect(bad.status).toBe(400)
    expect(bad.headers['content-encoding']).toBeUndefined()
    const sse = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/__onepipe/flows/compressed/stream?offset=0', headers: { 'accept-encoding': 'gzip, br' } }, (res) => {
        res.once('data', () => {
          req.destroy()
          resolve(res.headers)
        })
      })
      req.on('error', (err) => {
        if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err)
      })
      req.end()
    })
    expect(sse['content-type']).toMatch(/^text\/event-stream/)
    expect(sse['content-encoding']).toBeUndefined()
  })
})
