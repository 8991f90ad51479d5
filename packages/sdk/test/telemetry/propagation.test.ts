import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api'
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-node'
import { currentTraceparent, startSpan, traceContext, tracingEnabled, withSpan, type Database } from '@onepipe/core'
import { Cron, Flow, Workflow, WorkflowClient, WorkflowEngine } from '@onepipe/sdk'
import { MemoryStreamStore, StreamsClient, UnbrokenServer } from '@onepipe/streams'
import { testDatabase, waitFor } from '@onepipe/testing'

// The trace context travels with the work through storage, not through
// memory: a run started where the workflow is not defined (a WorkflowClient)
// is executed by an engine that only reads the row, and a flow event read
// back from the streams server names the span that appended it. That is what
// lets one trace follow the work from one process to another.
describe('trace context carried with the work', () => {
  const exporter = new InMemorySpanExporter()
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  let db: Database
  let cleanup: () => Promise<void>
  const streams = new UnbrokenServer({ store: new MemoryStreamStore(), longPollTimeoutMs: 300, sweepIntervalMs: 0 })
  const client = () => new StreamsClient({ url: 'http://streams.test', fetch: ((u: string, i?: RequestInit) => streams.app.request(u, i)) as typeof fetch })

  beforeAll(async () => {
    ;({ db, cleanup } = await testDatabase())
    provider.register()
  })
  beforeEach(() => exporter.reset())
  afterAll(async () => {
    await provider.shutdown()
    trace.disable()
    context.disable()
    propagation.disable()
    await streams.stop()
    await cleanup?.()
  })

  const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name)
  const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId

  it('a run started by a WorkflowClient (no body, no engine) continues the starter’s trace in the engine that executes it', async () => {
    expect(tracingEnabled()).toBe(true)
    const wf = Workflow.create('prop-ship')
      .db(db)
      .input(z.object({ id: z.string() }))
      .define(async (ctx, input) => ctx.step('label', async () => `label-${input.id}`))
      .build()
    const starter = new WorkflowClient({ db })
    const caller = startSpan('caller', { kind: 'server' })
    const traceId = caller?.spanContext().traceId
    // The "other process": an engine started after the run was stored.
    await context.with(trace.setSpan(context.active(), caller!), () => starter.start('prop-ship', { id: 'p1' }, { workflowId: 'prop-1' }))
    caller?.end()
    const engine = new WorkflowEngine({ db, workflows: [wf], poll: '50ms' })
    await engine.start()
    try {
      expect(await wf.result('prop-1', '30s')).toBe('label-p1')
    } finally {
      await engine.stop()
    }
    const [start] = spans('workflow.start prop-ship')
    const [run] = spans('workflow.run prop-ship')
    const [step] = spans('workflow.step label')
    expect(start?.spanContext().traceId).toBe(traceId)
    expect(parentOf(start!)).toBe(caller?.spanContext().spanId)
    expect(start?.kind).toBe(SpanKind.PRODUCER)
    expect(run?.spanContext().traceId).toBe(traceId)
    expect(parentOf(run!)).toBe(start?.spanContext().spanId)
    expect(run?.kind).toBe(SpanKind.CONSUMER)
    expect(parentOf(step!)).toBe(run?.spanContext().spanId)
    // The row holds the starter's span as W3C traceparent.
    const [row] = await db.query<{ traceparent: string }>('SELECT traceparent FROM _onepipe_workflows WHERE workflow_id = $1', ['prop-1'])
    expect(row?.traceparent).toBe(`00-${traceId}-${start?.spanContext().spanId}-01`)
  })

  it('a failed run and step end their spans with status ERROR and the error recorded', async () => {
    const wf = Workflow.create('prop-fail')
      .db(db)
      .define(async (ctx) =>
        ctx.step('explode', async () => {
          throw Object.assign(new Error('no stock'), { code: 'OUT_OF_STOCK' })
        }, { retry: { attempts: 1 } }),
      )
      .build()
    const engine = new WorkflowEngine({ db, workflows: [wf], poll: '50ms' })
    await engine.start()
    try {
      await withSpan('caller', {}, () => wf.start(undefined, { workflowId: 'prop-2' }))
      await expect(wf.result('prop-2', '30s')).rejects.toThrow('no stock')
    } finally {
      await engine.stop()
    }
    await waitFor(() => spans('workflow.run prop-fail').length === 1)
    const [run] = spans('workflow.run prop-fail')
    const [step] = spans('workflow.step explode')
    expect(step?.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'no stock' })
    expect(step?.attributes['error.type']).toBe('OUT_OF_STOCK')
    expect(step?.events.map((e) => e.name)).toContain('exception')
    expect(run?.status.code).toBe(SpanStatusCode.ERROR)
    expect(run?.attributes['onepipe.workflow.status']).toBe('failed')
  })

  it('a flow event kept in the streams server carries its append’s traceparent beside the data; a delivery in another reader continues it', async () => {
    const writer = Flow.create('prop-events').streams(client()).build()
    const reader = Flow.create('prop-events').streams(client()).build()
    const got: { traceparent: string | undefined; data: unknown }[] = []
    const stop = reader.subscribe((e) => void got.push({ traceparent: e.traceparent, data: e.data }))
    await stop.ready
    try {
      await withSpan('producer-request', { kind: 'server' }, () => writer.append({ sku: 'x' }))
      await waitFor(() => got.length === 1)
    } finally {
      await stop()
      await writer.close()
    }
    const [append] = spans('append prop-events')
    expect(got[0]).toEqual({ traceparent: `00-${append?.spanContext().traceId}-${append?.spanContext().spanId}-01`, data: { sku: 'x' } })
    const [read] = await reader.read()
    expect(read?.data).toEqual({ sku: 'x' })
    expect(read?.traceparent).toBe(got[0]?.traceparent)
    await waitFor(() => spans('deliver prop-events').length === 1)
    const [deliver] = spans('deliver prop-events')
    expect(deliver?.spanContext().traceId).toBe(append?.spanContext().traceId)
    expect(parentOf(deliver!)).toBe(append?.spanContext().spanId)
    expect(deliver?.kind).toBe(SpanKind.CONSUMER)
    await reader.close()
  })

  it('a cron run is the root of its own trace, whatever context started the scheduler', async () => {
    const job = Cron.create('prop-tick')
      .schedule('* * * * * *')
      .db(db)
      .lease({ ttlMs: 3000, renewMs: 1000 })
      .handler(async () => 'ok')
      .build()
    await withSpan('someone-starting-it', {}, () => job.start())
    try {
      await waitFor(() => spans('cron.run prop-tick').length >= 1, { what: 'a cron run span' })
    } finally {
      await job.stop()
    }
    const [run] = spans('cron.run prop-tick')
    expect(run?.parentSpanContext).toBeUndefined()
    expect(run?.attributes).toMatchObject({ 'onepipe.cron.job': 'prop-tick', 'onepipe.cron.kind': expect.stringMatching(/scheduled|catch_up/) as unknown })
  })

  it('traceparent: written from the active span, read back as a remote parent; malformed values start a new trace', () => {
    const span = startSpan('x')!
    const tp = currentTraceparent(trace.setSpan(context.active(), span))
    span.end()
    expect(tp).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    const back = trace.getSpanContext(traceContext(tp))
    expect(back).toMatchObject({ traceId: span.spanContext().traceId, spanId: span.spanContext().spanId, isRemote: true, traceFlags: 1 })
    for (const bad of [null, '', 'junk', `ff-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, `00-${'0'.repeat(32)}-${'b'.repeat(16)}-01`, `00-${'a'.repeat(32)}-${'0'.repeat(16)}-01`, `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01-extra`]) {
      expect(trace.getSpanContext(traceContext(bad))).toBeUndefined()
    }
    // A later version may add fields: the known part is still read.
    expect(trace.getSpanContext(traceContext(`01-${'a'.repeat(32)}-${'b'.repeat(16)}-00-more`))).toMatchObject({ traceId: 'a'.repeat(32), traceFlags: 0 })
    expect(currentTraceparent(context.active())).toBeNull()
  })
})
