import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { REST } from '@onepipe/sdk'
import { createLogger, serve } from '@onepipe/runtime'
import { silentLogger } from '@onepipe/core'

describe('protections on every response', () => {
  it('security headers on answers, errors and probes; no X-Powered-By', async () => {
    const api = REST.create('h').get('/ok', () => ({ ok: true })).build()
    const app = await serve({ port: 0, hostname: '127.0.0.1', rest: [api], handleSignals: false, logger: silentLogger })
    try {
      for (const path of ['/ok', '/nope', '/health']) {
        const res = await fetch(`${app.url}${path}`)
        expect(res.headers.get('x-content-type-options')).toBe('nosniff')
        expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN')
        expect(res.headers.get('strict-transport-security')).toMatch(/max-age=/)
        expect(res.headers.get('referrer-policy')).toBe('no-referrer')
        expect(res.headers.get('x-powered-by')).toBeNull()
      }
    } finally {
      await app.shutdown()
    }
  })

  it('CORS answers only the allowed origins', async () => {
    const api = REST.create('c').post('/x', () => ({ ok: true })).build()
    const app = await serve({ port: 0, hostname: '127.0.0.1', rest: [api], allowedOrigins: ['https://app.example.com'], handleSignals: false, logger: silentLogger })
    try {
      const pre = (origin: string) => fetch(`${app.url}/x`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })
      const good = await pre('https://app.example.com')
      expect(good.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
      const bad = await pre('https://evil.example.net')
      expect(bad.headers.get('access-control-allow-origin')).toBeNull()
      await expect(serve({ port: 0, allowedOrigins: ['app.example.com/path'], handleSignals: false, logger: silentLogger })).rejects.toMatchObject({ code: 'INVALID_ORIGIN' })
    } finally {
      await app.shutdown()
    }
  })

  it('log lines never carry a secret', async () => {
    const lines: string[] = []
    const out = new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) })
    const logger = createLogger({ destination: out })
    logger.info({ headers: { authorization: 'Bearer abc.def', cookie: 'onepipe_access=x', 'x-api-key': 'op_k' }, body: { password: 'hunter2', refreshToken: 'r1' }, apiKey: 'op_2' }, 'request')
    await new Promise((r) => setImmediate(r))
    const text = lines.join('')
    for (const secret of ['abc.def', 'onepipe_access=x', 'op_k', 'hunter2', 'r1', 'op_2']) expect(text).not.toContain(secret)
    expect(text).toContain('[redacted]')
  })
})
