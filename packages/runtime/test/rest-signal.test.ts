import { describe, expect, it } from 'vitest'
import { silentLogger } from '@onepipe/core'
import { Lifecycle, REST, sseResponse } from '@onepipe/sdk'
import { serve } from '@onepipe/runtime'

// A user's own long-lived REST route (SSE here) ends at shutdown when it
// follows ctx.signal, so nothing is cut and the drain does not wait on it.
describe('ctx.signal in REST handlers', () => {
  it('aborts when the app shuts down: a REST SSE route that follows it ends cleanly and nothing is cut', async () => {
    let aborted = false
    const api = REST.create('ticks')
      .get('/ticks', (ctx) => {
        ctx.signal.addEventListener('abort', () => (aborted = true))
        return sseResponse(() => new Promise(() => undefined), { onClose: () => undefined, signal: ctx.signal })
      })
      .build()
    const lifecycle = Lifecycle.create().timeout('10s', { drain: '5s' }).build()
    const app = await serve({ port: 0, hostname: '127.0.0.1', rest: [api], lifecycle, handleSignals: false, logger: silentLogger })
    const res = await fetch(`${app.url}/ticks`)
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    const ended = (async () => {
      for (;;) if ((await reader.read()).done) return 'end'
    })().catch(() => 'cut')
    const report = await app.shutdown()
    expect(await ended).toBe('end')
    expect(aborted).toBe(true)
    expect(report.cut).toEqual([])
  })
})
