import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { TerminalError, tracingEnabled, type Database } from '@onepipe/core'
import { Channel, Flow, REST, Workflow, type FlowEvent, type Unsubscribe } from '@onepipe/sdk'
import { createLogger, serve, type App } from '@onepipe/runtime'
import { testDatabase, waitFor } from '@onepipe/testing'
import { startOtlpReceiver, type ReceivedSpan } from './otlp-receiver.js'

// One HTTP request starts a workflow whose step calls a channel and appends
// to a flow; a subscriber handles the event. The app exports its spans to an
// OTLP/HTTP receiver started here: every span of that work arrives in the
// trace the caller's traceparent named, each under the span that caused it,
// and the log lines written along the way carry the trace's ids.
describe('tracing through serve() (OTLP/HTTP export)', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>
  let app: App
  let db: Database
  let cleanup: () => Promise<void>
  let unsubscribe: Unsubscribe
  const lines: Record<string, unknown>[] = []
  // The app's logger, as an app would use it in its handlers.
  const logger = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(...s.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)) } })
  const delivered: FlowEvent[] = []
  const saved: Record<string, string | undefined> = {}
  const env = (k: string, v: string) => {
    saved[k] = process.env[k]
    process.env[k] = v
  }

  // Built once the database is known; the workflow's step reads it when it runs.
  let events: Flow<{ orderId: string; chargeId: string }>
  const charge = Channel.create('trace-charge')
    .input(z.object({ orderId: z.string(), fail: z.boolean().optional() }))
    .handler(async (input, ctx) => {
      ctx.logger.info({ orderId: input.orderId }, 'charging the card')
      if (input.fail) throw new TerminalError('CARD_DECLINED', 'The card was declined')
      return { chargeId: `ch-${input.orderId}` }
    })
    .build()
  const placeOrder = Workflow.create('trace-place-order')
    .input(z.object({ orderId: z.string() }))
    .define(async (ctx, input) => {
      return ctx.step('charge', async () => {
        const receipt = await charge.call({ orderId: input.orderId })
        await events.append({ orderId: input.orderId, chargeId: receipt.chargeId })
        return receipt
      })
    })
    .build()
  const api = REST.create('trace-orders')
    .post('/api/orders/:id', async (ctx) => {
      const orderId = String(ctx.params.id)
      logger.info({ orderId }, 'placing the order')
      const run = await placeOrder.start({ orderId }, { workflowId: `order-${orderId}` })
      return { receipt: await run.result('60s') }
    })
    .build()

  beforeAll(async () => {
    receiver = await startOtlpReceiver()
    env('OTEL_EXPORTER_OTLP_ENDPOINT', receiver.url)
    env('OTEL_SERVICE_NAME', 'trace-test-shop')
    // Spans go out 50 ms after they end instead of 5 s: the test waits for them by condition.
    env('OTEL_BSP_SCHEDULE_DELAY', '50')
    ;({ db, cleanup } = await testDatabase())
    events = Flow.create('trace-order-events').schema(z.object({ orderId: z.string(), chargeId: z.string() })).db(db).build()
    app = await serve({ port: 0, hostname: '127.0.0.1', db, rest: [api], workflows: [placeOrder], channels: [charge], flows: [events], handleSignals: false, logger, accessLog: true, public: ['/rpc/trace-charge'] })
    unsubscribe = events.subscribe((e) => {
      delivered.push(e)
    })
    await unsubscribe.ready
  })

  afterAll(async () => {
    await unsubscribe?.()
    await app?.shutdown()
    await cleanup?.()
    await receiver?.close()
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  })

  const one = (spans: ReceivedSpan[], name: string): ReceivedSpan => {
    const found = spans.filter((s) => s.name === name)
    expect(found.map((s) => s.name)).toEqual([name])
    return found[0]!
  }

  it('one request → one trace: HTTP server, workflow start/run/step, channel call/handler, flow append and delivery, each under its cause', async () => {
    expect(tracingEnabled()).toBe(true)
    const traceId = randomBytes(16).toString('hex')
    const callerSpanId = randomBytes(8).toString('hex')
    const res = await fetch(`${app.url}/api/orders/o1`, { method: 'POST', headers: { traceparent: `00-${traceId}-${callerSpanId}-01` } })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ receipt: { chargeId: 'ch-o1' } })
    const requestId = res.headers.get('x-request-id')
    expect(requestId).toBeTruthy()

    const names = ['POST /api/orders/:id', 'workflow.start trace-place-order', 'workflow.run trace-place-order', 'workflow.step charge', 'channel.call trace-charge', 'channel.handle trace-charge', 'append trace-order-events', 'deliver trace-order-events']
    const spans = await waitFor(
      () => {
        const mine = receiver.spans.filter((s) => s.traceId === traceId)
        return names.every((n) => mine.some((s) => s.name === n)) && mine
      },
      { what: `every span of the request in trace ${traceId}` },
    )
    // Nothing of this request went to another trace.
    expect(receiver.spans.filter((s) => names.includes(s.name) && s.traceId !== traceId)).toEqual([])

    const server = one(spans, 'POST /api/orders/:id')
    const start = one(spans, 'workflow.start trace-place-order')
    const run = one(spans, 'workflow.run trace-place-order')
    const step = one(spans, 'workflow.step charge')
    const call = one(spans, 'channel.call trace-charge')
    const handle = one(spans, 'channel.handle trace-charge')
    const append = one(spans, 'append trace-order-events')
    const deliver = one(spans, 'deliver trace-order-events')

    expect(server.parentSpanId).toBe(callerSpanId)
    expect(start.parentSpanId).toBe(server.spanId)
    expect(run.parentSpanId).toBe(start.spanId)
    expect(step.parentSpanId).toBe(run.spanId)
    expect(call.parentSpanId).toBe(step.spanId)
    expect(handle.parentSpanId).toBe(call.spanId)
    expect(append.parentSpanId).toBe(step.spanId)
    expect(deliver.parentSpanId).toBe(append.spanId)

    expect(server.kind).toBe(2)
    expect(server.attributes).toMatchObject({ 'http.request.method': 'POST', 'http.route': '/api/orders/:id', 'http.response.status_code': 200, 'url.path': '/api/orders/o1', 'onepipe.request_id': requestId })
    expect(start.kind).toBe(4)
    expect(start.attributes).toMatchObject({ 'onepipe.workflow.name': 'trace-place-order', 'onepipe.workflow.id': 'order-o1', 'onepipe.workflow.created': true })
    expect(run.kind).toBe(5)
    expect(run.attributes).toMatchObject({ 'onepipe.workflow.id': 'order-o1', 'onepipe.workflow.status': 'completed' })
    expect(step.attributes).toMatchObject({ 'onepipe.workflow.step': 'charge', 'onepipe.workflow.step.attempts': 1 })
    expect(call.kind).toBe(3)
    expect(call.attributes).toMatchObject({ 'onepipe.channel': 'trace-charge' })
    expect(append.kind).toBe(4)
    expect(append.attributes).toMatchObject({ 'messaging.system': 'onepipe', 'messaging.destination.name': 'trace-order-events', 'messaging.operation.type': 'send', 'onepipe.flow.offset': 1 })
    expect(deliver.kind).toBe(5)
    expect(deliver.attributes).toMatchObject({ 'messaging.system': 'onepipe', 'messaging.destination.name': 'trace-order-events', 'messaging.operation.type': 'process' })
    expect(spans.every((s) => s.service === 'trace-test-shop')).toBe(true)
    expect(spans.every((s) => s.status.code !== 2)).toBe(true)

    // The event carried the append's context beside its data, not inside it.
    expect(delivered[0]?.data).toEqual({ orderId: 'o1', chargeId: 'ch-o1' })
    expect(delivered[0]?.traceparent).toBe(`00-${traceId}-${append.spanId}-01`)

    // The request's log lines (the handler's and the access log) carry its trace and its server span.
    const ofRequest = lines.filter((l) => l.requestId === requestId)
    expect(ofRequest.map((l) => l.msg)).toEqual(expect.arrayContaining(['placing the order', 'request']))
    for (const l of ofRequest) expect(l).toMatchObject({ traceId, spanId: server.spanId })
    // The channel handler's line, written inside the workflow run, is in the same trace, under the handler's span.
    const charged = lines.find((l) => l.msg === 'charging the card' && l.orderId === 'o1')
    expect(charged).toMatchObject({ traceId, spanId: handle.spanId })
    // Outside any span a line has no trace fields.
    expect(lines.find((l) => l.msg === 'OnePipe app listening')).not.toHaveProperty('traceId')
  })

  it('a failing call marks its spans ERROR with the exception recorded; a request without traceparent starts a new trace', async () => {
    const res = await fetch(`${app.url}/rpc/trace-charge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ orderId: 'o2', fail: true }) })
    expect(res.status).toBe(422)
    const requestId = res.headers.get('x-request-id')
    const server = await waitFor(() => receiver.spans.find((s) => s.name === 'POST /rpc/trace-charge' && s.attributes['onepipe.request_id'] === requestId), { what: 'the /rpc server span' })
    expect(server.parentSpanId).toBeUndefined()
    expect(server.attributes).toMatchObject({ 'http.route': '/rpc/trace-charge', 'http.response.status_code': 422 })
    // A 4xx is the caller's: the server span is not an error.
    expect(server.status.code).not.toBe(2)
    const call = await waitFor(() => receiver.spans.find((s) => s.name === 'channel.call trace-charge' && s.traceId === server.traceId))
    expect(call.parentSpanId).toBe(server.spanId)
    expect(call.status.code).toBe(2)
    expect(call.attributes['error.type']).toBe('CARD_DECLINED')
    expect(call.events.map((e) => e.name)).toContain('exception')
    const handle = await waitFor(() => receiver.spans.find((s) => s.name === 'channel.handle trace-charge' && s.traceId === server.traceId))
    expect(handle.status).toMatchObject({ code: 2, message: 'The card was declined' })
  })

  it('shutdown flushes what is still buffered', async () => {
    const traceId = randomBytes(16).toString('hex')
    const res = await fetch(`${app.url}/api/orders/o3`, { method: 'POST', headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } })
    expect(res.status).toBe(200)
    await unsubscribe()
    const report = await app.shutdown()
    expect(report.hooks.map((h) => h.name)).toContain('onepipe:telemetry')
    expect(report.hooks.find((h) => h.name === 'onepipe:telemetry')?.ok).toBe(true)
    // Right after the shutdown resolves, not eventually: the hook exported them before it returned.
    expect(receiver.spans.filter((s) => s.traceId === traceId).map((s) => s.name)).toEqual(expect.arrayContaining(['POST /api/orders/:id', 'workflow.run trace-place-order', 'append trace-order-events']))
    // The provider is unregistered: spans are no-ops again.
    expect(tracingEnabled()).toBe(false)
  })
})
