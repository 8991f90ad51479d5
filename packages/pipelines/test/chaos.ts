// The chaos run shared by the PostgreSQL and RabbitMQ dispatch tests:
// 3 control-plane processes on one PostgreSQL, 4 worker processes x 8,
// 2,000 diamond pipelines; one worker SIGKILLed mid-job and one control
// plane mid-dispatch (and, when given, a broker outage in between).
import { Auth } from '@onepipe/sdk'
import { spawnNode, testDatabase, waitFor, type NodeProcess } from '@onepipe/testing'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'

const plane = fileURLToPath(new URL('./fixtures/plane.mjs', import.meta.url))
const worker = fileURLToPath(new URL('./fixtures/worker.mjs', import.meta.url))
const SECRET = 'chaos-test-secret-of-at-least-32-chars!!'

export interface ChaosReport {
  pipelines: number
  stages: number
  seconds: number
  duplicates: number
  duplicatesByKilledWorker: number
  overlapping: number
}

export async function runChaos(o: { pipelines: number; rabbitmqUrl?: string; outage?: () => Promise<void> }, procs: NodeProcess[]): Promise<ChaosReport> {
  const t = await testDatabase()
  try {
    const auth = Auth.create('pipelines-test').db(t.db).secret(SECRET).build()
    await auth.ready()
    const app = await auth.applications.create({ name: 'chaos' })
    const { key } = await auth.apiKeys.create(app.id, { name: 'chaos' })
    await auth.close()
    await t.db.execute(`CREATE TABLE chaos_effects (pipeline_id uuid, stage text, execution_id uuid, worker text, started_at timestamptz, finished_at timestamptz)`)
    const env = { DATABASE_URL: t.url, SCHEMA: t.schema, AUTH_SECRET: SECRET, LEASE: '3s', RABBITMQ_URL: o.rabbitmqUrl, LOG_LEVEL: 'warn' }
    const planes = [0, 1, 2].map(() => spawnNode(plane, [], env))
    procs.push(...planes)
    const urls = await Promise.all(planes.map(async (p) => /URL=(\S+)/.exec(await p.waitFor(/URL=\S+/, 60_000))![1]!))
    const workers = [0, 1, 2, 3].map((i) =>
      spawnNode(worker, [], { URLS: [...urls.slice(i % 3), ...urls.slice(0, i % 3)].join(','), API_KEY: key, DATABASE_URL: t.url, SCHEMA: t.schema, NAME: `w${i}`, CONCURRENCY: '8' }),
    )
    procs.push(...workers)
    await Promise.all(workers.map((w) => w.waitFor(/READY/, 60_000)))
    const started = Date.now()

    // Create the pipelines while the workers run, through every replica.
    let made = 0
    const create = async (n: number): Promise<void> => {
      const url = urls[n % 3]!
      const body = JSON.stringify({
        name: 'chaos',
        stages: [
          { stageName: 'a', stageHandlerName: 'chaos.a' },
          { stageName: 'b', stageHandlerName: 'chaos.b', options: { runInParallelWith: ['c'] } },
          { stageName: 'c', stageHandlerName: 'chaos.c' },
          { stageName: 'd', stageHandlerName: 'chaos.d', options: { dependsOn: ['b', 'c'] } },
        ],
      })
      for (let i = 0; ; i++) {
        try {
          const res = await fetch(`${urls[(n + i) % 3]!}/pipelines`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json', 'idempotency-key': `p-${n}` }, body })
          if (res.status === 201 || res.status === 200) return
          throw new Error(`${url}: ${res.status} ${await res.text()}`)
        } catch (e) {
          if (i > 50) throw e
          await new Promise((r) => setTimeout(r, 100))
        }
      }
    }
    const creators = Array.from({ length: 8 }, async (_, k) => {
      for (let n = k; n < o.pipelines; n += 8) {
        await create(n)
        made++
      }
    })

    const effects = async (): Promise<number> => Number((await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM chaos_effects'))[0]?.n ?? 0)
    const stages = o.pipelines * 4
    // Kill a worker mid-job once work is flowing, then a control plane mid-dispatch.
    await waitFor(async () => (await effects()) >= stages * 0.15, { timeoutMs: 120_000, what: '15% of the stages to run' })
    workers[0]!.child.kill('SIGKILL')
    await waitFor(async () => (await effects()) >= stages * 0.35, { timeoutMs: 120_000, what: '35% of the stages to run' })
    planes[1]!.child.kill('SIGKILL')
    if (o.outage) {
      await waitFor(async () => (await effects()) >= stages * 0.5, { timeoutMs: 120_000, what: '50% of the stages to run' })
      await o.outage()
    }
    await Promise.all(creators)
    expect(made).toBe(o.pipelines)
    try {
      await waitFor(
        async () => Number((await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM _onepipe_pipelines WHERE status = 'Completed'`))[0]?.n) === o.pipelines,
        { timeoutMs: 300_000, intervalMs: 500, what: `all ${o.pipelines} pipelines to complete` },
      )
    } catch (e) {
      // Say where it stands, so a failure here can be read without rerunning.
      console.log(JSON.stringify(await t.db.query(`SELECT status, count(*)::int AS n FROM _onepipe_pipeline_stages GROUP BY status`)))
      console.log(JSON.stringify(await t.db.query(`SELECT name, status, attempt, lease_expires_at, ready_at, now() AS now FROM _onepipe_pipeline_stages WHERE status NOT IN ('Completed', 'NotStarted') LIMIT 5`)))
      for (const p of [...planes, ...workers]) console.log(p.output().split('\n').slice(-8).join('\n'))
      throw e
    }
    const seconds = (Date.now() - started) / 1000

    const notCompleted = await t.db.query(`SELECT status, count(*)::int AS n FROM _onepipe_pipeline_stages WHERE status <> 'Completed' GROUP BY status`)
    expect(notCompleted).toEqual([])
    // Exactly once, except jobs the killed worker had in flight.
    const dups = await t.db.query<{ pipeline_id: string; stage: string; n: number; by_killed: boolean }>(
      `SELECT pipeline_id, stage, count(*)::int AS n, bool_or(worker = 'w0') AS by_killed FROM chaos_effects GROUP BY pipeline_id, stage HAVING count(*) > 1`,
    )
    const missing = await t.db.query(
      `SELECT s.pipeline_id, s.name FROM _onepipe_pipeline_stages s LEFT JOIN chaos_effects e ON e.pipeline_id = s.pipeline_id AND e.stage = s.name WHERE e.pipeline_id IS NULL`,
    )
    expect(missing).toEqual([])
    expect(dups.filter((d) => !d.by_killed)).toEqual([])
    expect(dups.every((d) => d.n === 2)).toBe(true)
    // Dependencies from the recorded times of the attempts that completed each stage.
    const order = await t.db.query<{ early: number }>(
      `WITH e AS (SELECT e.* FROM chaos_effects e JOIN _onepipe_pipeline_stages s ON s.execution_id = e.execution_id)
       SELECT count(*)::int AS early FROM e d
        JOIN e b ON b.pipeline_id = d.pipeline_id AND b.stage IN ('b', 'c') AND d.stage = 'd'
        WHERE d.started_at < b.finished_at`,
    )
    const order2 = await t.db.query<{ early: number }>(
      `WITH e AS (SELECT e.* FROM chaos_effects e JOIN _onepipe_pipeline_stages s ON s.execution_id = e.execution_id)
       SELECT count(*)::int AS early FROM e x JOIN e a ON a.pipeline_id = x.pipeline_id AND a.stage = 'a' AND x.stage IN ('b', 'c')
        WHERE x.started_at < a.finished_at`,
    )
    expect([order[0]?.early, order2[0]?.early]).toEqual([0, 0])
    const overlap = await t.db.query<{ n: number }>(
      `WITH e AS (SELECT e.* FROM chaos_effects e JOIN _onepipe_pipeline_stages s ON s.execution_id = e.execution_id)
       SELECT count(*)::int AS n FROM e b JOIN e c ON c.pipeline_id = b.pipeline_id AND b.stage = 'b' AND c.stage = 'c'
        WHERE b.started_at < c.finished_at AND c.started_at < b.finished_at`,
    )
    const report: ChaosReport = {
      pipelines: o.pipelines,
      stages,
      seconds,
      duplicates: dups.length,
      duplicatesByKilledWorker: dups.filter((d) => d.by_killed).length,
      overlapping: overlap[0]?.n ?? 0,
    }
    expect(report.overlapping).toBeGreaterThan(0)
    return report
  } finally {
    for (const p of procs) p.child.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    await t.cleanup()
  }
}
