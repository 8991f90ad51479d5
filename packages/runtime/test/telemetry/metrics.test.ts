import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { silentLogger, TerminalError, type Database } from '@onepipe/core'
import { Channel, Cron, Flow, Projection, REST, Signal, Workflow, type Unsubscribe } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { testDatabase, waitFor } from '@onepipe/testing'

/** Samples of one metric in Prometheus text, each with its labels. */
function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    out.push({ labels, value: Number(m[3]) })
  }
  return out
}

/** The value of the one sample of `name` whose labels include `labels`; undefined when there is none. */
function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  const found = samples(text, name).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found[0]?.value
}

// After some activity of every primitive, /metrics shows the engine
// metrics under their Prometheus names, with the labels that tell the
// primitives apart, beside the HTTP metrics by route.
describe('/metrics: engine metrics', () => {
  const tag = randomBytes(4).toString('hex')
  const n = (s: string) => `${s}-${tag}`
  let app: App
  let db: Database
  let cleanup: () => Promise<void>
  let unsubscribe: Unsubscribe | undefined
  let release: () => void = () => undefined
  const handled: number[] = []
  const scrape = async () => (await app.request('/metrics')).text()

  const wf = Workflow.create(n('m-order'))
    .input(z.object({ wait: z.boolean().optional() }))
    .define(async (ctx, input) => {
      if (input.wait) await ctx.waitForSignal('go')
      return ctx.step('work', async () => 1)
    })
    .build()
  const pay = Channel.create(n('m-pay'))
    .input(z.object({ id: z.string(), fail: z.boolean().optional() }))
    .idempotency((i) => i.id)
    .handler(async (i) => {
      if (i.fail) throw new TerminalError('DECLINED', 'declined')
      return { paid: i.id }
    })
    .build()
  const ticks: number[] = []
  const cron = Cron.create(n('m-tick'))
    .schedule('* * * * * *')
    .lease({ ttlMs: 3000, renewMs: 1000 })
    .handler(() => void ticks.push(Date.now()))
    .build()
  const api = REST.create(n('m-api'))
    .get('/m/items/:id', (ctx) => ({ id: ctx.params.id }))
    .build()
  let events: Flow<{ k: number }>
  let count: Projection<number, { k: number }>
  let sigA: Signal<number>
  let sigB: Signal<number>

  beforeAll(async () => {
    ;({ db, cleanup } = await testDatabase())
    events = Flow.create(n('m-events')).schema(z.object({ k: z.number() })).db(db).build()
    count = Projection.create(n('m-count')).from(events).initial(0).reduce((s) => s + 1).build()
    sigA = Signal.create(n('m-sig')).default(0).db(db).build()
    sigB = Signal.create(n('m-sig')).default(0).db(db).build()
    app = await serve({ port: 0, hostname: '127.0.0.1', db, rest: [api], workflows: [wf], channels: [pay], flows: [events], projections: [count], signals: [sigA, sigB], cron: [cron], handleSignals: false, logger: silentLogger })
  })

  afterAll(async () => {
    release()
    await unsubscribe?.()
    await app?.shutdown()
    await cleanup?.()
  })

  it('workflow runs by status and step duration', async () => {
    const run = await wf.start({}, { workflowId: n('r1') })
    await run.result('60s')
    const parked = await wf.start({ wait: true }, { workflowId: n('r2') })
    await parked.cancel()
    const text = await scrape()
    const workflow = n('m-order')
    expect(value(text, 'onepipe_workflow_runs_total', { workflow, status: 'started' })).toBe(2)
    expect(value(text, 'onepipe_workflow_runs_total', { workflow, status: 'completed' })).toBe(1)
    expect(value(text, 'onepipe_workflow_runs_total', { workflow, status: 'cancelled' })).toBe(1)
    expect(value(text, 'onepipe_workflow_step_duration_seconds_count', { workflow, step: 'work' })).toBe(1)
    expect(value(text, 'onepipe_workflow_step_duration_seconds_bucket', { workflow, step: 'work', le: '+Inf' })).toBe(1)
    expect(value(text, 'onepipe_workflow_step_duration_seconds_sum', { workflow, step: 'work' })).toBeGreaterThanOrEqual(0)
    expect(text).toContain('# TYPE onepipe_workflow_step_duration_seconds histogram')
  })

  it('channel calls by outcome and replays', async () => {
    await pay.call({ id: 'a' })
    await pay.call({ id: 'a' })
    await expect(pay.call({ id: 'b', fail: true })).rejects.toThrow('declined')
    await expect(pay.call({ id: 'b', fail: true })).rejects.toThrow('declined')
    const text = await scrape()
    const channel = n('m-pay')
    expect(value(text, 'onepipe_channel_calls_total', { channel, outcome: 'completed' })).toBe(2)
    expect(value(text, 'onepipe_channel_calls_total', { channel, outcome: 'failed' })).toBe(2)
    expect(value(text, 'onepipe_channel_replays_total', { channel })).toBe(2)
    expect(text).toContain('# TYPE onepipe_channel_calls_total counter')
  })

  it('cron runs by outcome and fire lateness', async () => {
    await waitFor(() => ticks.length >= 1, { what: 'a cron tick' })
    const text = await waitFor(async () => {
      const t = await scrape()
      return (value(t, 'onepipe_cron_runs_total', { job: n('m-tick'), outcome: 'completed' }) ?? 0) >= 1 && t
    })
    expect(value(text, 'onepipe_cron_fire_lateness_seconds_count', { job: n('m-tick') })).toBeGreaterThanOrEqual(1)
    expect(value(text, 'onepipe_cron_fire_lateness_seconds_sum', { job: n('m-tick') })).toBeGreaterThanOrEqual(0)
  })

  it('flow appends and subscriber lag, projection lag', async () => {
    let gate = new Promise<void>((r) => (release = r))
    unsubscribe = events.subscribe(async (e) => {
      await gate
      handled.push(e.offset)
    })
    await unsubscribe.ready
    for (let k = 1; k <= 3; k++) await events.append({ k })
    const flow = n('m-events')
    // The subscriber holds the first event: the three appended are all still ahead of it.
    const held = await waitFor(async () => {
      const t = await scrape()
      return value(t, 'onepipe_flow_subscriber_lag', { flow }) === 3 && t
    })
    expect(value(held, 'onepipe_flow_appends_total', { flow })).toBe(3)
    release()
    gate = Promise.resolve()
    await waitFor(() => handled.length === 3)
    await waitFor(async () => value(await scrape(), 'onepipe_flow_subscriber_lag', { flow }) === 0, { what: 'the subscriber to catch up' })
    await count.sync()
    await waitFor(async () => value(await scrape(), 'onepipe_projection_lag', { projection: n('m-count') }) === 0, { what: 'the projection lag at 0' })
    await unsubscribe()
    unsubscribe = undefined
    // A stopped subscription reports no lag.
    expect(value(await scrape(), 'onepipe_flow_subscriber_lag', { flow })).toBeUndefined()
  })

  it('signal updates and compare-and-swap retries', async () => {
    let first = true
    // The first run of A's updater lets B write in between, so A's swap loses once and is retried.
    const v = await sigA.update(async (x) => {
      if (first) {
        first = false
        await sigB.set(100)
      }
      return x + 1
    })
    expect(v).toBe(101)
    const text = await scrape()
    const signal = n('m-sig')
    expect(value(text, 'onepipe_signal_updates_total', { signal })).toBe(2)
    expect(value(text, 'onepipe_signal_cas_retries_total', { signal })).toBe(1)
  })

  it('HTTP requests by route pattern, beside the process metrics', async () => {
    expect((await app.request('/m/items/7')).status).toBe(200)
    expect((await app.request('/m/items/8')).status).toBe(200)
    const text = await scrape()
    expect(value(text, 'onepipe_http_requests_total', { method: 'GET', route: '/m/items/:id', status: '200' })).toBe(2)
    expect(text).toContain('onepipe_process_cpu_user_seconds_total')
  })
})
