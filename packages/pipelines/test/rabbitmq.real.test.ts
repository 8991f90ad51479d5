// RabbitMQ dispatch against a real broker (TEST_RABBITMQ_URL) and a real
// PostgreSQL. A broker that is not there fails these tests: they never skip.
import { execFile } from 'node:child_process'
import { connect as tcp } from 'node:net'
import { connect as amqp } from 'amqplib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Auth, Database, insertPipeline, parsePipelineDefinition, stderrLogger } from '@onepipe/sdk'
import { ControlPlane } from '@onepipe/pipelines'
import { testDatabase, waitFor, type NodeProcess } from '@onepipe/testing'
import { runChaos } from './chaos.js'
import { RabbitDispatch } from '../src/dispatch/rabbitmq.js'
import { renewSettings } from '../src/dispatch/rabbitmq-sql.js'
import { StageEngine } from '../src/engine/engine.js'
import { diamond, type Json } from './helpers.js'

const RABBIT = process.env.TEST_RABBITMQ_URL ?? process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672'
function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile(cmd, args, { timeout: 60_000 }, (err) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`)) : resolve())))
}
const log = stderrLogger.child({ test: 'rabbitmq' })

async function requireRabbit(): Promise<void> {
  const u = new URL(RABBIT)
  const ok = await new Promise<boolean>((resolve) => {
    const s = tcp({ host: u.hostname, port: Number(u.port || 5672) })
    s.setTimeout(2000)
    s.once('connect', () => (s.destroy(), resolve(true)))
    s.once('timeout', () => (s.destroy(), resolve(false)))
    s.once('error', () => resolve(false))
  })
  if (!ok) throw new Error(`RabbitMQ is not reachable at ${u.host} (TEST_RABBITMQ_URL). Start it (see .ci/run); these tests never skip.`)
}

interface Rig {
  db: Database
  schema: string
  planes: ControlPlane[]
  auth: Auth
  key: string
  appId: string
  call: (i: number, method: string, path: string, body?: unknown) => Promise<{ status: number; body: Json; ms: number }>
  cleanup: () => Promise<void>
}

async function rig(planes = 1): Promise<Rig> {
  await requireRabbit()
  const t = await testDatabase()
  const auth = Auth.create('pipelines-rabbit-test').db(t.db).secret('r'.repeat(32)).build()
  await auth.ready()
  const extra: Database[] = []
  const cps: ControlPlane[] = []
  for (let i = 0; i < planes; i++) {
    // Each control plane on its own pool, as separate processes would be.
    const db = i === 0 ? t.db : Database.create(`rabbit-${i}`).postgres(t.url!).schema(t.schema).build()
    if (i > 0) extra.push(db)
    const cp = ControlPlane.create().db(db).auth(auth).port(0).lease('30s').sweepEvery('200ms').maxWait('30s').rabbitmq(RABBIT).build()
    await cp.start()
    cps.push(cp)
  }
  const app = await auth.applications.create({ name: 'rabbit' })
  const { key } = await auth.apiKeys.create(app.id, { name: 'worker' })
  const call = async (i: number, method: string, path: string, body?: unknown) => {
    const t0 = Date.now()
    const res = await fetch(`${cps[i]!.url}${path}`, {
      method,
      headers: { 'x-api-key': key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : undefined, ms: Date.now() - t0 }
  }
  return {
    db: t.db,
    schema: t.schema,
    planes: cps,
    auth,
    key,
    appId: app.id,
    call,
    cleanup: async () => {
      for (const cp of cps) await cp.stop()
      await auth.close()
      for (const db of extra) await db.close()
      await t.cleanup()
    },
  }
}

/** Messages ready in a queue, read over a connection of the test's own. */
async function queueDepth(queue: string): Promise<number> {
  const conn = await amqp(RABBIT)
  try {
    const ch = await conn.createChannel()
    return (await ch.checkQueue(queue)).messageCount
  } finally {
    await conn.close()
  }
}

async function outboxRows(db: Database): Promise<number> {
  const [r] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM _onepipe_pipeline_outbox')
  return r?.n ?? 0
}

async function brokerUp(): Promise<void> {
  await run('rabbitmqctl', ['start_app'])
  await run('rabbitmqctl', ['await_startup']).catch(() => undefined)
}

describe('RabbitMQ dispatch', () => {
  let r: Rig
  beforeAll(async () => {
    r = await rig(1)
  })
  afterAll(async () => {
    await brokerUp().catch(() => undefined)
    await r?.cleanup()
  })

  async function pull(handlers: string[], waitMs = 5000, max = 1, i = 0): Promise<{ status: number; body: Json; ms: number }> {
    return r.call(i, 'POST', '/jobs/pull', { handlers, max, waitMs })
  }

  async function drain(id: string, handlers: string[]): Promise<void> {
    for (let n = 0; n < 50; n++) {
      const got = await r.call(0, 'GET', `/pipelines/${id}`)
      if (got.body.status !== 'Running') {
        expect(got.body.status).toBe('Completed')
        return
      }
      const p = await pull(handlers, 2000, 4)
      for (const j of p.status === 200 ? p.body.jobs : []) expect((await r.call(0, 'POST', '/jobs/ack', { executionId: j.executionId, status: 'completed', output: j.stageName })).status).toBe(200)
    }
    throw new Error(`pipeline ${id} did not complete`)
  }

  it('runs a diamond end to end; its queues are durable and the outbox drains', async () => {
    const created = await r.call(0, 'POST', '/pipelines', { ...(diamond('d', (s) => `rd.${s}`) as object), input: { n: 1 } })
    expect(created.status).toBe(201)
    const id = created.body.pipelineId
    await drain(id, ['rd.a', 'rd.b', 'rd.c', 'rd.d'])
    const got = await r.call(0, 'GET', `/pipelines/${id}`)
    expect(got.body.stages.find((s: Json) => s.name === 'd').output).toBe('d')
    await waitFor(async () => (await outboxRows(r.db)) === 0, { timeoutMs: 10_000 })
    // Declared by the relay: durable quorum queues with their dead-letter queue.
    expect(await queueDepth(`${r.appId}.stage.rd.d`)).toBeGreaterThanOrEqual(0)
    expect(await queueDepth(`${r.appId}.stage.rd.d.dlq`)).toBe(0)
  })

  it('wakes a parked pull within milliseconds of a new job, through the broker', async () => {
    const parked = pull(['rw.x'], 20_000)
    // Past the pull's first claim in PostgreSQL: only a message can wake it now (the re-check is 5 s away).
    await waitFor(() => r.planes[0]!.parked === 1, { timeoutMs: 5000 })
    await new Promise((res) => setTimeout(res, 300))
    const t0 = Date.now()
    await r.call(0, 'POST', '/pipelines', { name: 'wake', stages: [{ stageName: 's', stageHandlerName: 'rw.x' }] })
    const got = await parked
    const ms = Date.now() - t0
    expect(got.status).toBe(200)
    expect(got.body.jobs[0].handler).toBe('rw.x')
    log.info({ ms }, 'parked pull woken')
    expect(ms).toBeLessThan(1000)
  })

  it('survives a broker outage: pipelines created during it complete after it, consumers come back', async () => {
    await run('rabbitmqctl', ['stop_app'])
    try {
      const ids: string[] = []
      for (let i = 0; i < 5; i++) {
        const c = await r.call(0, 'POST', '/pipelines', diamond(`outage-${i}`, (s) => `ro.${s}`))
        expect(c.status).toBe(201)
        ids.push(c.body.pipelineId)
      }
      // Written in the stage's transaction, waiting for the broker.
      expect(await outboxRows(r.db)).toBeGreaterThanOrEqual(5)
      await new Promise((res) => setTimeout(res, 5000))
      await brokerUp()
      await waitFor(async () => (await outboxRows(r.db)) === 0, { timeoutMs: 30_000 })
      // Published again after the outage: the first stages wait in their queue.
      expect(await queueDepth(`${r.appId}.stage.ro.a`)).toBeGreaterThanOrEqual(5)
      for (const id of ids) await drain(id, ['ro.a', 'ro.b', 'ro.c', 'ro.d'])
    } finally {
      await brokerUp()
    }
    // A consumer again: a parked pull is woken by a message, not by the 5-second re-check.
    const parked = pull(['ro.after'], 20_000)
    await waitFor(() => r.planes[0]!.parked === 1, { timeoutMs: 5000 })
    await new Promise((res) => setTimeout(res, 300))
    const t0 = Date.now()
    await r.call(0, 'POST', '/pipelines', { name: 'after', stages: [{ stageName: 's', stageHandlerName: 'ro.after' }] })
    expect((await parked).status).toBe(200)
    expect(Date.now() - t0).toBeLessThan(1500)
  })
})

describe('RabbitMQ dispatch: the outbox', () => {
  it('a publish whose channel closes before its confirm leaves the row, and the row is published again', async () => {
    await requireRabbit()
    const t = await testDatabase()
    const engine = new StageEngine(t.db, { leaseMs: 30_000, log })
    const d = new RabbitDispatch(t.db, engine, { log, url: RABBIT })
    const appId = `outbox-${t.schema}`
    try {
      await d.start()
      const { relay } = d.internals
      let closed = 0
      relay.beforeConfirm = (ch) => {
        if (closed++ > 0) return
        // The channel closes with the batch sent and its confirms not yet in (the broker may have routed it:
        // a duplicate is harmless, a lost row is not).
        ch.close().catch(() => undefined)
      }
      const spec = parsePipelineDefinition({ name: 'o', stages: [{ stageName: 's', stageHandlerName: 'ob.s' }] })
      const { pipelineId } = await insertPipeline(t.db, { appId, spec })
      await waitFor(() => closed > 0, { timeoutMs: 10_000 })
      await relay.idle()
      // Rolled back with the failed confirm: the row is still there.
      const [row] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM _onepipe_pipeline_outbox WHERE app_id = $1', [appId])
      expect(row?.n).toBe(1)
      // After the reconnect the relay publishes it again and deletes it.
      await waitFor(async () => (await outboxRows(t.db)) === 0, { timeoutMs: 15_000 })
      expect(closed).toBeGreaterThanOrEqual(2)
      await waitFor(async () => (await queueDepth(`${appId}.stage.ob.s`)) >= 1, { timeoutMs: 5000 })
      // And a pull gets the stage through its message.
      const jobs = await d.pull(appId, ['ob.s'], 1, 5000, null, new AbortController().signal)
      expect(jobs.map((j) => j.pipelineId)).toEqual([pipelineId])
    } finally {
      await d.stop()
      engine.close()
      await t.cleanup()
    }
  })
})

describe('RabbitMQ dispatch: two control planes', () => {
  it('hand each stage out once', async () => {
    const r = await rig(2)
    try {
      const n = 60
      const made = await Promise.all(Array.from({ length: n }, (_, i) => r.call(i % 2, 'POST', '/pipelines', { name: `two-${i}`, stages: [{ stageName: 's', stageHandlerName: 'r2.s' }] })))
      expect(made.every((m) => m.status === 201)).toBe(true)
      const seen: string[] = []
      // Eight pullers per control plane, pulling until every stage was handed out.
      await Promise.all(
        Array.from({ length: 16 }, async (_, i) => {
          while (seen.length < n) {
            const p = await r.call(i % 2, 'POST', '/jobs/pull', { handlers: ['r2.s'], max: 3, waitMs: 1000 })
            for (const j of p.status === 200 ? p.body.jobs : []) {
              seen.push(j.stageId)
              expect((await r.call(i % 2, 'POST', '/jobs/ack', { executionId: j.executionId, status: 'completed' })).status).toBe(200)
            }
          }
        }),
      )
      expect(seen.length).toBe(n)
      expect(new Set(seen).size).toBe(n)
      const [a] = await r.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM _onepipe_stage_attempts`)
      expect(a?.n).toBe(n)
    } finally {
      await r.cleanup()
    }
  })
})

describe('RabbitMQ dispatch: the outbox trigger', () => {
  for (const backend of ['real', 'embedded'] as const) {
    it(`writes a row for each stage made Pending, only while a RabbitMQ control plane holds the lease (${backend})`, async () => {
      const t = await testDatabase({ backend })
      const engine = new StageEngine(t.db, { leaseMs: 30_000, log })
      try {
        const spec = parsePipelineDefinition(diamond('t', (s) => `tr.${s}`))
        const rows = async (): Promise<string[]> => (await t.db.query<{ handler: string }>('SELECT handler FROM _onepipe_pipeline_outbox ORDER BY id')).map((r) => r.handler)
        // PostgreSQL dispatch: the trigger writes nothing.
        await insertPipeline(t.db, { appId: 'app', spec })
        expect(await rows()).toEqual([])
        await t.db.execute('DELETE FROM _onepipe_pipeline_stages')
        await renewSettings(t.db, t.db.channel('onepipe_pipeline_outbox'), 'cp-1', 60_000)
        await insertPipeline(t.db, { appId: 'app', spec })
        expect(await rows()).toEqual(['tr.a'])
        // A claim (Pending to Running) writes nothing; the ack that releases b and c writes one row each.
        const [a] = await engine.claim('app', ['tr.a'], 1, null)
        expect(await rows()).toEqual(['tr.a'])
        await engine.ack('app', { executionId: a!.executionId, status: 'completed' })
        expect((await rows()).sort()).toEqual(['tr.a', 'tr.b', 'tr.c'])
        // A lease that ran out turns it off again.
        await t.db.execute(`UPDATE _onepipe_pipeline_settings SET rabbitmq_until = now() - interval '1 second'`)
        await insertPipeline(t.db, { appId: 'app', spec })
        expect(await rows()).toHaveLength(3)
      } finally {
        engine.close()
        await t.cleanup()
      }
    })
  }
})

// In this file, not a file of its own: it stops the shared broker, which would break the tests above
// if vitest ran them in parallel with it.
describe('RabbitMQ dispatch under chaos', () => {
  const procs: NodeProcess[] = []
  it("3 control planes, 4 workers x 8, 2,000 diamond pipelines; a worker and a control plane SIGKILLed and the broker stopped for 5 s: every pipeline completes, each stage ran once but for the killed worker's jobs", { timeout: 900_000 }, async () => {
    await requireRabbit()
    const r = await runChaos(
      {
        pipelines: Number(process.env.CHAOS_PIPELINES ?? 2000),
        rabbitmqUrl: RABBIT,
        outage: async () => {
          await run('rabbitmqctl', ['stop_app'])
          await new Promise((res) => setTimeout(res, 5000))
          await brokerUp()
        },
      },
      procs,
    )
    console.log(`chaos (rabbitmq): ${JSON.stringify(r)}`)
    expect(r.duplicates).toBe(r.duplicatesByKilledWorker)
  })
})
