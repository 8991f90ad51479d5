import { describe, expect, it } from 'vitest'
import { Auth, RateLimit, REST } from '@onepipe/sdk'

describe('REST limits', () => {
  it('a route spends its budget after authentication: per user, 429 with Retry-After once spent, other users unaffected', async () => {
    const auth = Auth.bearer((t) => (t === 'ada' || t === 'bob' ? { id: t, roles: [] } : null))
    const perUser = RateLimit.create('rest-per-user').points(3).per('60s').by('user').build()
    const api = REST.create('limited').auth(auth).get('/x', { rateLimit: perUser }, () => ({ ok: true })).build()
    const as = (who: string) => api.request('/x', { headers: { authorization: `Bearer ${who}` } })
    for (let i = 0; i < 3; i++) expect((await as('ada')).status).toBe(200)
    const over = await as('ada')
    expect(over.status).toBe(429)
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(await over.json()).toMatchObject({ error: { code: 'RATE_LIMITED', requestId: expect.any(String) as string } })
    expect((await as('bob')).status).toBe(200)
    // Unauthenticated is a 401 before any budget is spent.
    expect((await api.request('/x')).status).toBe(401)
  })

  it('uploads have their own limit (50 MB by default); JSON keeps the body limit', async () => {
    const api = REST.create('uploads')
      .post('/json', async (ctx) => ({ got: typeof (await ctx.body()) }))
      .post('/upload', async (ctx) => ({ size: (await ctx.file('f'))?.size ?? 0 }))
      .post('/small', { maxUploadSize: '1kb' }, async (ctx) => ({ size: (await ctx.file('f'))?.size ?? 0 }))
      .build()
    const twoMb = 'x'.repeat(2 * 1024 * 1024)
    expect((await api.request('/json', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ twoMb }) })).status).toBe(413)
    const form = () => {
      const f = new FormData()
      f.set('f', new Blob([twoMb]), 'big.bin')
      return f
    }
    const up = await api.request('/upload', { method: 'POST', body: form() })
    expect(up.status).toBe(200)
    expect(await up.json()).toEqual({ size: twoMb.length })
    expect((await api.request('/small', { method: 'POST', body: form() })).status).toBe(413)
  })
})
