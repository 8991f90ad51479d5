import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Hono } from 'hono'
import { ConfigError, silentLogger, type Component, type Database } from '@onepipe/core'
import { Lifecycle } from '@onepipe/sdk'
import { serve } from '@onepipe/runtime'
import { spawnNode, testDatabase, type NodeProcess } from '@onepipe/testing'

const fixture = fileURLToPath(new URL('./fixtures/live-app.mjs', import.meta.url))
/** The fixture's Lifecycle timeout: the whole shutdown must fit in it. */
const BUDGET_MS = 20_000

/** An open SSE stream: resolves `ended` with 'end' on a clean end of stream, or the error that cut it. */
async function openSse(url: string): Promise<{ first: string; ended: Promise<string> }> {
  const res = await fetch(url)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const first = await reader.read()
  const ended = (async () => {
    for (;;) if ((await reader.read()).done) return 'end'
  })().catch((e: unknown) => `cut: ${e instanceof Error ? e.message : String(e)}`)
  return { first: new TextDecoder().decode(first.value), ended }
}

describe('SIGTERM with long-lived connections open', () => {
  let url: string | undefined
  let schema: string
  let cleanup: () => Promise<void>
  let dir: string
  let p: NodeProcess | undefined

  beforeAll(async () => {
    ;({ url, schema, cleanup } = await testDatabase())
    dir = await mkdtemp(join(tmpdir(), 'onepipe-live-'))
  })
  afterAll(async () => {
    // Only does something when the test failed before the app exited.
    p?.kill('SIGKILL')
    await p?.exited
    await rm(dir, { recursive: true, force: true })
    await cleanup()
  })

  it('ends every SSE stream and long-poll at once, lets the in-flight request finish with 200, runs every hook and exits 0 within the budget', { timeout: 60_000 }, async () => {
    const release = join(dir, 'release')
    const proc = (p = spawnNode(fixture, [], { DATABASE_URL: url, SCHEMA: schema, RELEASE_FILE: release, SHUTDOWN_TIMEOUT: `${BUDGET_MS}ms`, LOG_LEVEL: 'info' }))
    const ready = await proc.waitFor(/READY port=\d+ streams=\S+/, 90_000)
    const port = Number(/port=(\d+)/.exec(ready)?.[1])
    const streamsUrl = /streams=(\S+)/.exec(ready)?.[1] ?? ''
    expect(streamsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    const base = `http://127.0.0.1:${port}`

    // A long-poll at the tail of the flow's stream on the embedded streams server: nothing will come.
    const longPoll = fetch(`${streamsUrl}/v1/stream/flows/ticks?offset=now&live=long-poll`).then(
      (r) => r.status,
      (e: unknown) => `cut: ${e instanceof Error ? e.message : String(e)}`,
    )
    const flowSse = await openSse(`${base}/__onepipe/flows/ticks/stream`)
    const signalSse = await openSse(`${base}/__onepipe/signals/mood/stream`)
    expect(flowSse.first).toContain(': ok')
    expect(signalSse.first).toContain(': ok')
    let slowSettled = false
    const slow = fetch(`${base}/slow`)
      .then(async (r) => ({ status: r.status, body: await r.json() }))
      .finally(() => (slowSettled = true))
    await proc.waitFor(/SLOW_STARTED/)

    proc.kill('SIGTERM')
    // Both SSE streams end cleanly while the ordinary request is still being served.
    expect(await flowSse.ended).toBe('end')
    expect(await signalSse.ended).toBe('end')
    expect(slowSettled).toBe(false)
    await writeFile(release, '')
    expect(await slow).toEqual({ status: 200, body: { done: true } })
    // The embedded streams server answers its long-poll (204: nothing new) instead of dropping it.
    expect(await longPoll).toBe(204)

    expect(await proc.exited).toBe(0)
    const out = proc.output()
    expect(out).toContain('HOOK marker')
    expect(out).toContain('HOOK db closed')
    const complete = out.split('\n').find((l) => l.includes('"shutdown complete"')) ?? ''
    const report = JSON.parse(complete) as { hooks: string[]; timedOut: boolean }
    expect(report.hooks).toEqual(['marker', 'db', 'onepipe:database', 'onepipe:cache'])
    // Within the budget by the app's own clock: the shutdown did not run out of it.
    expect(report.timedOut).toBe(false)
    expect(out).not.toContain('cut short')
    expect(out).not.toContain('shutdown hook failed')
  })
})

describe('the shutdown budget', () => {
  let db: Database
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ db, cleanup } = await testDatabase())
  })
  afterAll(() => cleanup())

  it('cuts a response that ignores rt.signal at the drain deadline, reports what it cut, and still runs every hook', async () => {
    // A third-party responder that never ends its stream on its own.
    const stuck: Component = {
      kind: 'custom',
      name: 'stuck',
      routes(app) {
        ;(app as Hono).get('/stuck', () => new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode(': hi\n\n')) }), { headers: { 'content-type': 'text/event-stream' } }))
      },
    }
    const ran: string[] = []
    const lifecycle = Lifecycle.create()
      .onShutdown('after', () => void ran.push('after'))
      .timeout('6s', { drain: '1s' })
      .build()
    const app = await serve({ port: 0, hostname: '127.0.0.1', db, components: [stuck], lifecycle, handleSignals: false, logger: silentLogger })
    const res = await fetch(`${app.url}/stuck`)
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    const ended = (async () => {
      for (;;) if ((await reader.read()).done) return 'end'
    })().catch(() => 'cut')

    const report = await app.shutdown()
    expect(report.cut).toEqual([expect.stringMatching(/0 request\(s\) still running and 1 connection\(s\) still open at the drain deadline \(1000ms\)/)])
    expect(report.timedOut).toBe(false)
    expect(report.notRun).toEqual([])
    expect(report.hooks.map((h) => [h.name, h.ok])).toEqual([
      ['after', true],
      ['onepipe:cache', true],
    ])
    expect(ran).toEqual(['after'])
    expect(await ended).toBe('cut')
  })

  it('refuses a drain longer than the whole shutdown', () => {
    expect(() => Lifecycle.create().timeout('5s', { drain: '10s' }).build()).toThrow(ConfigError)
  })
})
