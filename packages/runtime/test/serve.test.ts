import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Lifecycle, REST, type Component } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { testDatabase } from '@onepipe/testing'
import type { Database } from '@onepipe/core'
import type { Hono } from 'hono'

describe('serve()', () => {
  let app: App
  let db: Database
  let cleanup: () => Promise<void>
  let healthy = true
  const events: string[] = []
  const component: Component = {
    kind: 'custom',
    name: 'probe',
    async attach(rt) {
      events.push(`attach:${typeof rt.instanceId}`)
    },
    async detach() {
      events.push('detach')
    },
    routes(h) {
      ;(h as Hono).get('/__onepipe/probe', (c) => c.json({ probe: true }))
    },
  }

  beforeAll(async () => {
    ;({ db, cleanup } = await testDatabase())
    const api = REST.create('hello').get('/hello/:name', (ctx) => ({ hello: ctx.params.name })).build()
    const lifecycle = Lifecycle.create()
      .healthCheck('flaky', () => {
        if (!healthy) throw new Error('flaky is down')
      })
      .onShutdown('log', () => {
        events.push('hook')
      })
      .build()
    app = await serve({ port: 0, hostname: '127.0.0.1', db, rest: [api], components: [component], lifecycle, handleSignals: false, logger: silent(), version: '1.2.3', public: true })
  })
  afterAll(async () => {
    await cleanup()
  })

  it('serves REST routes and component routes on one port', async () => {
    expect(await (await fetch(`${app.url}/hello/ada`)).json()).toEqual({ hello: 'ada' })
    expect(await (await app.request('/__onepipe/probe')).json()).toEqual({ probe: true })
  })

  it('answers an unknown route with 404 JSON', async () => {
    const res = await app.request('/nope', { method: 'POST' })
    expect(res.status).toBe(404)
    expect(await res.json()).toMatchObject({ error: { code: 'ROUTE_NOT_FOUND', message: 'No route for POST /nope' } })
  })

  it('/health is always 200; /ready runs every check and names the failing ones with 503', async () => {
    expect((await app.request('/health')).status).toBe(200)
    const ok = await app.request('/ready')
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { checks: { name: string }[] }).checks.map((c) => c.name).sort()).toEqual(['database', 'flaky'])
    healthy = false
    const bad = await app.request('/ready')
    expect(bad.status).toBe(503)
    expect(await bad.json()).toMatchObject({ status: 'unavailable', failing: ['flaky'] })
    healthy = true
  })

  it('/metrics counts requests by route pattern', async () => {
    await app.request('/hello/x')
    const text = await (await app.request('/metrics')).text()
    expect(text).toMatch(/onepipe_http_requests_total\{method="GET",route="\/hello\/:name",status="200"\} \d+/)
    expect(text).toContain('onepipe_process_cpu_seconds_total')
    await app.request('/__onepipe/probe')
    await app.request('/no/such/path')
    const after = await (await app.request('/metrics')).text()
    expect(after).toMatch(/onepipe_http_requests_total\{method="GET",route="\/__onepipe\/probe",status="200"\} \d+/)
    // Unknown paths share one label, so a scanner cannot blow up the series count.
    expect(after).toMatch(/onepipe_http_requests_total\{method="GET",route="\(unmatched\)",status="404"\} 1/)
  })

  it('/version and /openapi.json', async () => {
    expect(await (await app.request('/version')).json()).toMatchObject({ version: '1.2.3' })
    const doc = (await (await app.request('/openapi.json')).json()) as { paths: Record<string, unknown> }
    expect(Object.keys(doc.paths)).toContain('/hello/{name}')
  })

  it('echoes the request id, and makes one when the client sent none', async () => {
    expect((await app.request('/health', { headers: { 'x-request-id': 'abc' } })).headers.get('x-request-id')).toBe('abc')
    expect((await app.request('/hello/x')).headers.get('x-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/)
  })

  it('registers the instance while running', async () => {
    const rows = await db.query<{ instance_id: string }>('SELECT instance_id FROM _onepipe_instances')
    expect(rows.map((r) => r.instance_id)).toContain(app.instanceId)
  })

  it('shutdown detaches components, runs hooks, and leaves the app database open', async () => {
    const report = await app.shutdown('test')
    expect(events).toEqual(['attach:string', 'detach', 'hook'])
    expect(report.hooks.map((h) => h.name)).toEqual(['log', 'onepipe:cache'])
    expect(report.timedOut).toBe(false)
    // The app was given this database, so shutdown leaves it usable for its owner.
    expect(await db.query<{ ok: number }>('SELECT 1 AS ok')).toEqual([{ ok: 1 }])
  })
})

describe('Lifecycle', () => {
  it('runs hooks by priority, equal priorities together, and reports failures without stopping', async () => {
    const seen: string[] = []
    const lc = Lifecycle.create()
      .onShutdown('c', () => void seen.push('c'), 30)
      .onShutdown('a', () => void seen.push('a'), 10)
      .onShutdown('boom', () => {
        throw new Error('x')
      }, 20)
      .onShutdown('b', () => void seen.push('b'), 20)
      .build()
    const r = await lc.runShutdown()
    expect(seen).toEqual(['a', 'b', 'c'])
    expect(r.hooks.find((h) => h.name === 'boom')).toMatchObject({ ok: false, error: 'x' })
  })

  it('stops at the timeout and says so', async () => {
    const lc = Lifecycle.create()
      .onShutdown('slow', () => new Promise(() => undefined), 10)
      .onShutdown('never', () => undefined, 20)
      .build()
    const r = await lc.runShutdown(100)
    expect(r.timedOut).toBe(true)
    expect(r.hooks.map((h) => h.name)).toEqual(['slow'])
  })

  it('a check that hangs fails by its timeout', async () => {
    const lc = Lifecycle.create().healthCheck('hang', () => new Promise(() => undefined), { timeout: 50 }).build()
    const [r] = await lc.runChecks()
    expect(r).toMatchObject({ name: 'hang', ok: false })
  })
})

function silent() {
  const l = { debug() {}, info() {}, warn() {}, error() {}, child: () => l }
  return l
}
