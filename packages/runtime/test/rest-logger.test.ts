import { describe, expect, it } from 'vitest'
import { REST, type Logger } from '@onepipe/sdk'
import { serve } from '@onepipe/runtime'

describe('ctx.logger', () => {
  it("is the app's logger under serve(), with the request id", async () => {
    const lines: Record<string, unknown>[] = []
    const make = (bindings: Record<string, unknown>): Logger => ({
      debug() {},
      info: (obj) => void lines.push({ ...bindings, ...(typeof obj === 'string' ? { msg: obj } : obj) }),
      warn() {},
      error() {},
      child: (b) => make({ ...bindings, ...b }),
    })
    const logger = make({})
    const api = REST.create('logs').get('/x', (ctx) => (ctx.logger.info({ did: 'it' }), { ok: true })).build()
    const app = await serve({ port: 0, hostname: '127.0.0.1', rest: [api], handleSignals: false, logger })
    try {
      const res = await fetch(`${app.url}/x`, { headers: { 'x-request-id': 'log-1' } })
      expect(res.status).toBe(200)
      expect(lines.some((l) => l.did === 'it' && l.requestId === 'log-1')).toBe(true)
    } finally {
      await app.shutdown()
    }
  })
})
