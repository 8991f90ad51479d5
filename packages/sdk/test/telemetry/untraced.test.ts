import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CounterFamily, GaugeFamily, HistogramFamily, currentTraceparent, startSpan, tracingEnabled, withSpan, type Database } from '@onepipe/core'
import { Channel, Flow, Workflow, WorkflowEngine } from '@onepipe/sdk'
import { testDatabase } from '@onepipe/testing'

// Without a tracer provider (no OTLP endpoint), OnePipe starts no span and
// stores no trace context: the work runs as it would without telemetry.
describe('without a tracer provider', () => {
  let db: Database
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ db, cleanup } = await testDatabase())
  })
  afterAll(async () => {
    await cleanup?.()
  })

  it('starts no span and stores no traceparent with runs or events', async () => {
    expect(tracingEnabled()).toBe(false)
    expect(startSpan('x')).toBeUndefined()
    expect(await withSpan('x', {}, async (span) => span)).toBeUndefined()
    expect(currentTraceparent()).toBeNull()
    const events = Flow.create('untraced-events').db(db).build()
    const echo = Channel.create('untraced-echo').handler(async (i) => i as number).build()
    const wf = Workflow.create('untraced-wf')
      .db(db)
      .define(async (ctx) => ctx.step('s', async () => (await events.append({ n: await echo.call(1) })).offset))
      .build()
    const engine = new WorkflowEngine({ db, workflows: [wf], poll: '50ms' })
    await engine.start()
    try {
      await wf.start(undefined, { workflowId: 'u-1' })
      expect(await wf.result('u-1', '30s')).toBe(1)
    } finally {
      await engine.stop()
    }
    const [run] = await db.query<{ traceparent: string | null }>('SELECT traceparent FROM _onepipe_workflows WHERE workflow_id = $1', ['u-1'])
    expect(run?.traceparent).toBeNull()
    const [e] = await events.read()
    expect(e).toEqual({ id: e?.id, offset: 1, timestamp: e?.timestamp, data: { n: 1 } })
    expect(e).not.toHaveProperty('traceparent')
    await events.close()
  })
})

describe('engine metric families', () => {
  it('counters keep one child per label set; the same child is handed back', async () => {
    const c = new CounterFamily('t_calls_total', 'calls', ['channel', 'outcome'])
    const ok = c.with('pay', 'ok')
    ok.inc()
    ok.inc(2)
    expect(c.with('pay', 'ok')).toBe(ok)
    c.with('pay', 'failed').inc()
    expect(await c.get()).toEqual({
      name: 't_calls_total',
      help: 'calls',
      type: 'counter',
      aggregator: 'sum',
      values: [
        { labels: { channel: 'pay', outcome: 'ok' }, value: 3 },
        { labels: { channel: 'pay', outcome: 'failed' }, value: 1 },
      ],
    })
  })

  it('histograms render cumulative buckets, +Inf, sum and count', async () => {
    const h = new HistogramFamily('t_seconds', 'time', ['step'], [0.1, 1])
    const s = h.with('a')
    for (const v of [0.05, 0.5, 0.5, 3]) s.observe(v)
    s.observe(Number.NaN)
    const { values } = await h.get()
    expect(values.map((v) => [v.metricName, v.labels.le, v.value])).toEqual([
      ['t_seconds_bucket', '0.1', 1],
      ['t_seconds_bucket', '1', 3],
      ['t_seconds_bucket', '+Inf', 4],
      ['t_seconds_sum', undefined, 4.05],
      ['t_seconds_count', undefined, 4],
    ])
  })

  it('gauges read their sources on scrape: the largest per label set; a failing or silent source is left out', async () => {
    const g = new GaugeFamily('t_lag', 'lag', ['flow'])
    const a = g.source(['orders'], () => 3)
    g.source(['orders'], async () => 7)
    g.source(['audit'], () => {
      throw new Error('store down')
    })
    g.source(['clicks'], () => undefined)
    expect((await g.get()).values).toEqual([{ labels: { flow: 'orders' }, value: 7 }])
    a()
    expect((await g.get()).values).toEqual([{ labels: { flow: 'orders' }, value: 7 }])
  })

  it('a family keeps at most 2000 label sets; more are counted under (other)', async () => {
    const c = new CounterFamily('t_many_total', 'many', ['step'])
    for (let i = 0; i < 2100; i++) c.with(`s${i}`).inc()
    const { values } = await c.get()
    expect(values.length).toBe(2001)
    expect(values.find((v) => v.labels.step === '(other)')?.value).toBe(100)
  })
})
