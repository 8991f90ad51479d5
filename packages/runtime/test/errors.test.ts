import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Channel, Flow, Signal, Workflow, type Logger } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { testDatabase } from '@onepipe/testing'
import { z } from 'zod'

// Every route OnePipe mounts answers errors in one shape, with the request id
// that the x-request-id header also carries, so a user can find the log line.
describe('one error path for every route', () => {
  let app: App
  let cleanup: () => Promise<void>
  const logged: { msg: string | undefined; requestId: unknown }[] = []
  const logger: Logger = {
    debug() {},
    info() {},
    warn() {},
    error(obj, msg) {
      logged.push({ msg, requestId: (obj as { requestId?: unknown }).requestId })
    },
    child() {
      return logger
    },
  }

  beforeAll(async () => {
    const t = await testDatabase()
    cleanup = t.cleanup
    const db = t.db
    const flow = Flow.create('err-flow').schema(z.object({ n: z.number() })).db(db).build()
    const signal = Signal.create('err-signal').schema(z.number()).default(0).db(db).build()
    const wf = Workflow.create('err-wf').input(z.object({ n: z.number() })).db(db).define(async (_ctx, i) => i.n).build()
    const ch = Channel.create('err-ch').input(z.object({ n: z.number() })).db(db).handler(async (i) => {
      if (i.n === 500) throw new Error('secret internal detail')
      return i.n
    }).build()
    app = await serve({ port: 0, hostname: '127.0.0.1', db, flows: [flow], signals: [signal], workflows: [wf], channels: [ch], handleSignals: false, logger, public: true })
  })
  afterAll(async () => {
    await app.shutdown()
    await cleanup()
  })

  const cases: [string, string, RequestInit | undefined, number][] = [
    ['flow append, invalid event', '/__onepipe/flows/err-flow/events', { method: 'POST', body: '{"n":"x"}', headers: { 'content-type': 'application/json' } }, 400],
    ['flow append, malformed JSON', '/__onepipe/flows/err-flow/events', { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } }, 400],
    ['flow read, bad offset', '/__onepipe/flows/err-flow/events?offset=-1', undefined, 400],
    ['flow stream, bad Last-Event-ID', '/__onepipe/flows/err-flow/stream', { headers: { 'last-event-id': 'x' } }, 400],
    ['signal set, invalid value', '/__onepipe/signals/err-signal', { method: 'PUT', body: '"x"', headers: { 'content-type': 'application/json' } }, 400],
    ['signal set, wrong content type', '/__onepipe/signals/err-signal', { method: 'PUT', body: '1', headers: { 'content-type': 'text/plain' } }, 415],
    ['workflow start, invalid input', '/__onepipe/workflows/err-wf/start', { method: 'POST', body: '{"input":{"n":"x"}}', headers: { 'content-type': 'application/json' } }, 400],
    ['workflow run, unknown id', '/__onepipe/workflows/runs/nope', undefined, 404],
    ['workflow runs, bad status', '/__onepipe/workflows/err-wf/runs?status=bogus', undefined, 400],
    ['rpc, invalid input', '/rpc/err-ch', { method: 'POST', body: '{"n":"x"}', headers: { 'content-type': 'application/json' } }, 400],
    ['rpc, empty body', '/rpc/err-ch', { method: 'POST', body: '', headers: { 'content-type': 'application/json' } }, 400],
    ['rpc, body over the limit', '/rpc/err-ch', { method: 'POST', body: JSON.stringify({ n: 1, pad: 'x'.repeat(2 * 1024 * 1024) }), headers: { 'content-type': 'application/json' } }, 413],
    ['rpc, handler crash', '/rpc/err-ch', { method: 'POST', body: '{"n":500}', headers: { 'content-type': 'application/json' } }, 500],
    ['unknown route', '/__onepipe/nothing-here', undefined, 404],
  ]

  for (const [name, path, init, status] of cases) {
    it(`${name}: ${status} with the request id in the body and the header`, async () => {
      const res = await fetch(`${app.url}${path}`, init)
      expect(res.status).toBe(status)
      const body = (await res.json()) as { error: { code: string; message: string; requestId: string } }
      expect(body.error.code).toMatch(/^[A-Z_]+$/)
      expect(body.error.message.length).toBeGreaterThan(0)
      expect(body.error.requestId).toBe(res.headers.get('x-request-id'))
      expect(body.error.requestId.length).toBeGreaterThan(0)
    })
  }

  it('keeps a client-chosen request id', async () => {
    const res = await fetch(`${app.url}/__onepipe/workflows/runs/nope`, { headers: { 'x-request-id': 'trace-42' } })
    expect(((await res.json()) as { error: { requestId: string } }).error.requestId).toBe('trace-42')
  })

  it('a 5xx shows no internals and is logged with the same request id', async () => {
    const res = await fetch(`${app.url}/rpc/err-ch`, { method: 'POST', body: '{"n":500}', headers: { 'content-type': 'application/json', 'x-request-id': 'crash-1' } })
    const text = await res.text()
    expect(text).not.toContain('secret internal detail')
    expect(logged.some((l) => l.requestId === 'crash-1' && l.msg === 'request failed')).toBe(true)
  })
})
