import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger, type Database } from '@onepipe/core'
import { Flow, REST, WorkflowClient, type Unsubscribe } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { spawnNode, testDatabase, waitFor, type NodeProcess } from '@onepipe/testing'
import { startOtlpReceiver } from './otlp-receiver.js'

// Two real processes on one PostgreSQL, each exporting its own spans to the
// receiver: the API process starts a run by name (it has no workflow body),
// the worker process executes it and appends to a flow, and the API
// process's subscriber handles the event. One trace crosses both processes
// twice, carried only by what was stored: the run's row and the event.
describe('one trace across processes', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>
  let db: Database
  let schema: string
  let url: string | undefined
  let cleanup: () => Promise<void>
  let app: App
  let worker: NodeProcess
  let unsubscribe: Unsubscribe
  const handled: string[] = []
  const saved: Record<string, string | undefined> = {}
  const otel = (service: string, endpoint: string) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SERVICE_NAME: service, OTEL_BSP_SCHEDULE_DELAY: '50' })

  beforeAll(async () => {
    receiver = await startOtlpReceiver()
    ;({ db, schema, url, cleanup } = await testDatabase())
    for (const [k, v] of Object.entries(otel('xp-api', receiver.url))) {
      saved[k] = process.env[k]
      process.env[k] = v
    }
    const client = new WorkflowClient({ db })
    const api = REST.create('xp-api')
      .post('/api/ship/:id', async (ctx) => {
        const orderId = String(ctx.params.id)
        await client.start('xp-ship', { orderId }, { workflowId: `ship-${orderId}` })
        return { started: orderId }
      })
      .build()
    const shipments = Flow.create('xp-shipments').db(db).build()
    app = await serve({ port: 0, hostname: '127.0.0.1', db, rest: [api], flows: [shipments], handleSignals: false, logger: silentLogger, public: true })
    unsubscribe = shipments.subscribe((e) => void handled.push((e.data as { orderId: string }).orderId))
    await unsubscribe.ready
    worker = spawnNode(fileURLToPath(new URL('./fixtures/ship-worker.mjs', import.meta.url)), [], { DATABASE_URL: url, SCHEMA: schema, ...otel('xp-worker', receiver.url) })
    await worker.waitFor(/READY/, 60_000)
  })

  afterAll(async () => {
    if (worker) {
      worker.kill('SIGTERM')
      await worker.exited
    }
    await unsubscribe?.()
    await app?.shutdown()
    await cleanup?.()
    await receiver?.close()
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  })

  it('API request → run and step in the worker → delivery back in the API process, one trace, each span under its cause', async () => {
    const traceId = randomBytes(16).toString('hex')
    const callerSpanId = randomBytes(8).toString('hex')
    const res = await fetch(`${app.url}/api/ship/s1`, { method: 'POST', headers: { traceparent: `00-${traceId}-${callerSpanId}-01` } })
    expect(res.status).toBe(200)
    await waitFor(() => handled.includes('s1'), { what: 'the shipment event in the API process' })
    const names = ['POST /api/ship/:id', 'workflow.start xp-ship', 'workflow.run xp-ship', 'workflow.step label', 'append xp-shipments', 'deliver xp-shipments']
    const spans = await waitFor(
      () => {
        const mine = receiver.spans.filter((s) => s.traceId === traceId)
        return names.every((n) => mine.some((s) => s.name === n)) && mine
      },
      { what: `the spans of trace ${traceId} from both processes`, timeoutMs: 60_000 },
    )
    const by = (name: string) => spans.find((s) => s.name === name)!
    const [server, start, run, step, append, deliver] = names.map(by) as [typeof spans[number], typeof spans[number], typeof spans[number], typeof spans[number], typeof spans[number], typeof spans[number]]
    expect([server, start, deliver].map((s) => s.service)).toEqual(['xp-api', 'xp-api', 'xp-api'])
    expect([run, step, append].map((s) => s.service)).toEqual(['xp-worker', 'xp-worker', 'xp-worker'])
    expect(server.parentSpanId).toBe(callerSpanId)
    expect(start.parentSpanId).toBe(server.spanId)
    expect(run.parentSpanId).toBe(start.spanId)
    expect(step.parentSpanId).toBe(run.spanId)
    expect(append.parentSpanId).toBe(step.spanId)
    expect(deliver.parentSpanId).toBe(append.spanId)
    // The worker's log line, written in its step, names the same trace.
    await worker.waitFor(new RegExp(`"traceId":"${traceId}","spanId":"${step.spanId}".*"msg":"printing the label"`))
  })
})
