// Crash tests with real processes on one PostgreSQL: kill -9 during a sleep,
// kill -9 of one of three executors mid-step (plain steps, then the same with
// every step a ctx.transaction), and a paused (SIGSTOP) owner whose late step
// result must be refused. Side effects are counted in a table with no unique
// constraint, so a step that ran twice would show as two rows.
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import type { Database } from '@onepipe/sdk'
import { spawnNode, testDatabase, waitFor, type NodeProcess } from '@onepipe/testing'
// @ts-expect-error -- a plain JS fixture shared with the worker processes
import { apps } from './fixtures/apps.mjs'

const worker = fileURLToPath(new URL('./fixtures/worker.mjs', import.meta.url))
let db: Database
let schema: string
let url: string | undefined
let cleanup: () => Promise<void>
let procs: NodeProcess[] = []
// What (b) measured, printed beside (f)'s figure.
let plainRanAgain: number | undefined

interface Apps {
  napper: { start(i?: unknown, o?: { workflowId?: string }): Promise<{ workflowId: string; result(t?: string): Promise<unknown> }> }
  batch: { start(i: unknown, o?: { workflowId?: string }): Promise<{ workflowId: string }> }
  txbatch: { start(i: unknown, o?: { workflowId?: string }): Promise<{ workflowId: string }> }
  pausable: { start(i?: unknown, o?: { workflowId?: string }): Promise<{ workflowId: string; result(t?: string): Promise<unknown> }> }
  cancellable: { start(i?: unknown, o?: { workflowId?: string }): Promise<{ workflowId: string; cancel(): Promise<void>; result(t?: string): Promise<unknown> }> }
}
let wf: Apps

beforeAll(async () => {
  ;({ db, schema, url, cleanup } = await testDatabase())
  await db.execute('CREATE TABLE effects (run_id text NOT NULL, step text NOT NULL, pid int NOT NULL, at timestamptz NOT NULL DEFAULT now())')
  wf = apps(db) as Apps
})
afterEach(async () => {
  for (const p of procs) {
    p.kill('SIGCONT')
    p.kill('SIGKILL')
  }
  await Promise.all(procs.map((p) => p.exited))
  procs = []
})
afterAll(async () => {
  await cleanup()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function startWorker(): Promise<NodeProcess> {
  const p = spawnNode(worker, [], { DATABASE_URL: url ?? '', SCHEMA: schema })
  procs.push(p)
  await p.waitFor(/READY/)
  return p
}

async function effects(run?: string): Promise<{ run_id: string; step: string; pid: number }[]> {
  return db.query('SELECT run_id, step, pid FROM effects WHERE ($1::text IS NULL OR run_id = $1) ORDER BY at', [run ?? null])
}

// Deadlines are generous: they only bound how long a broken test hangs.
const until = <T>(fn: () => Promise<T>, timeoutMs: number, what: string) => waitFor(fn, { timeoutMs, what, intervalMs: 50 })

it('(a) kill -9 during ctx.sleep("3s"), restart once its wake time passed: the run resumes and finishes without sleeping again; the step before the sleep ran once', { timeout: 60_000 }, async () => {
  const p1 = await startWorker()
  const h = await wf.napper.start(undefined, { workflowId: 'nap-1' })
  // Parked in the database: no process holds it, and the recorded sleep names the run's wake time.
  const slept = await until(
    async () => (await db.query<{ wake_at: Date; fence: number; v: number }>(
      `SELECT w.wake_at, w.fence, (s.result->>'v')::float8 AS v FROM _onepipe_workflows w JOIN _onepipe_workflow_steps s USING (workflow_id)
       WHERE w.workflow_id = 'nap-1' AND s.step_name = '$sleep' AND w.owner IS NULL AND w.wake_at IS NOT NULL`,
    ))[0],
    20_000,
    'the run to park on its sleep',
  )
  expect(slept.wake_at.getTime()).toBe(slept.v)
  p1.kill('SIGKILL')
  await p1.exited
  await until(async () => (await db.query<{ due: boolean }>(`SELECT now() > $1::timestamptz AS due`, [slept.wake_at]))[0]!.due, 20_000, 'the wake time to pass')
  await startWorker()
  expect(await h.result('30s')).toBe('rested')
  const [run] = await db.query<{ status: string; completed_at: Date; fence: number }>(`SELECT status, completed_at, fence FROM _onepipe_workflows WHERE workflow_id = 'nap-1'`)
  expect(run!.status).toBe('completed')
  expect(run!.completed_at.getTime()).toBeGreaterThanOrEqual(slept.wake_at.getTime())
  // The wake time had passed: the restarted worker's one claim ran the run to the end. A sleep
  // started over would have parked it again and needed another claim (fence 3).
  expect(Number(run!.fence)).toBe(Number(slept.fence) + 1)
  expect(await db.query(`SELECT (result->>'v')::float8 AS v FROM _onepipe_workflow_steps WHERE workflow_id = 'nap-1' AND step_name LIKE '$sleep%'`)).toEqual([{ v: slept.v }])
  const rows = await effects('nap-1')
  expect(rows.filter((r) => r.step === 'before')).toHaveLength(1)
  expect(rows.filter((r) => r.step === 'after')).toHaveLength(1)
})

it('(b) 200 runs over 3 processes, one killed mid-step: every run completes; each step ran once, except at most once more for a step executing at the kill', { timeout: 150_000 }, async () => {
  const workers = [await startWorker(), await startWorker(), await startWorker()]
  const ids: string[] = []
  for (let i = 0; i < 200; i++) {
    const ms = { a: 100 + ((i * 37) % 200), b: 100 + ((i * 53) % 200), c: 100 + ((i * 71) % 200) }
    ids.push((await wf.batch.start({ ms }, { workflowId: `batch-${i}` })).workflowId)
  }
  const victim = workers[1]!
  // Kill once the victim is in the middle of several runs and every run has an owner, so the runs it holds are counted before the kill.
  await until(async () => (await db.query('SELECT 1 FROM effects WHERE pid = $1', [victim.pid])).length >= 20, 60_000, 'the victim to be mid-run')
  await until(async () => (await db.query(`SELECT 1 FROM _onepipe_workflows WHERE workflow_name = 'batch' AND status = 'pending'`)).length === 0, 60_000, 'every run to be claimed')
  const [held] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM _onepipe_workflows WHERE owner = $1', [`p${victim.pid}`])
  victim.kill('SIGKILL')
  await victim.exited
  expect(held!.n).toBeGreaterThan(0)

  await until(async () => {
    const [r] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM _onepipe_workflows WHERE workflow_name = 'batch' AND status = 'completed'`)
    return r!.n === 200
  }, 90_000, 'all 200 runs to complete')

  const rows = await db.query<{ run_id: string; step: string; n: number; pids: number[] }>(
    `SELECT run_id, step, count(*)::int AS n, array_agg(pid ORDER BY at) AS pids FROM effects WHERE run_id LIKE 'batch-%' GROUP BY run_id, step`,
  )
  expect(rows).toHaveLength(600)
  const recorded = new Map(
    (await db.query<{ workflow_id: string; step_name: string; result: { v: number } }>(`SELECT workflow_id, step_name, result FROM _onepipe_workflow_steps WHERE workflow_id LIKE 'batch-%'`)).map((s) => [
      `${s.workflow_id}/${s.step_name}`,
      s.result.v,
    ]),
  )
  expect(recorded.size).toBe(600)
  const twice = rows.filter((r) => r.n > 1)
  for (const r of twice) {
    // Only a step the killed process was executing runs again: its first
    // effect is the victim's, and the recorded result is the survivor's.
    expect(r.n).toBe(2)
    expect(r.pids[0]).toBe(victim.pid)
    expect(recorded.get(`${r.run_id}/${r.step}`)).not.toBe(victim.pid)
  }
  // At most one step per run the victim held at the kill.
  expect(new Set(twice.map((r) => r.run_id)).size).toBe(twice.length)
  expect(twice.length).toBeLessThanOrEqual(held!.n)
  plainRanAgain = twice.length
  console.log(`(b) victim held ${held!.n} runs at the kill; ${twice.length} in-flight steps ran again; all other ${600 - twice.length} steps ran exactly once`)
})

it('(f) the same 200 runs over 3 processes with every step a ctx.transaction, one killed mid-step: every run completes and no step ran twice', { timeout: 150_000 }, async () => {
  const workers = [await startWorker(), await startWorker(), await startWorker()]
  for (let i = 0; i < 200; i++) {
    const ms = { a: 100 + ((i * 37) % 200), b: 100 + ((i * 53) % 200), c: 100 + ((i * 71) % 200) }
    await wf.txbatch.start({ ms }, { workflowId: `txbatch-${i}` })
  }
  const victim = workers[1]!
  await until(async () => (await db.query('SELECT 1 FROM effects WHERE pid = $1', [victim.pid])).length >= 20, 60_000, 'the victim to be mid-run')
  await until(async () => (await db.query(`SELECT 1 FROM _onepipe_workflows WHERE workflow_name = 'txbatch' AND status = 'pending'`)).length === 0, 60_000, 'every run to be claimed')
  const [held] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM _onepipe_workflows WHERE owner = $1', [`p${victim.pid}`])
  victim.kill('SIGKILL')
  await victim.exited
  expect(held!.n).toBeGreaterThan(0)

  await until(async () => {
    const [r] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM _onepipe_workflows WHERE workflow_name = 'txbatch' AND status = 'completed'`)
    return r!.n === 200
  }, 120_000, 'all 200 runs to complete')

  const rows = await db.query<{ run_id: string; step: string; n: number; pid: number }>(
    `SELECT run_id, step, count(*)::int AS n, min(pid) AS pid FROM effects WHERE run_id LIKE 'txbatch-%' GROUP BY run_id, step`,
  )
  expect(rows).toHaveLength(600)
  const twice = rows.filter((r) => r.n > 1)
  expect(twice).toEqual([])
  // Each effect row and its step's recorded result come from the same commit: the same process.
  const recorded = new Map(
    (await db.query<{ workflow_id: string; step_name: string; result: { v: number } }>(`SELECT workflow_id, step_name, result FROM _onepipe_workflow_steps WHERE workflow_id LIKE 'txbatch-%'`)).map((s) => [
      `${s.workflow_id}/${s.step_name}`,
      s.result.v,
    ]),
  )
  expect(recorded.size).toBe(600)
  for (const r of rows) expect(recorded.get(`${r.run_id}/${r.step}`)).toBe(r.pid)
  // Transactions the victim had begun but not committed at the kill (as far as its output got
  // out before it died): rolled back by PostgreSQL, then run once by a survivor.
  const begun = new Set([...victim.output().matchAll(/TX-BEGIN (txbatch-\d+\/[abc])/g)].map((m) => m[1]!))
  const committedByVictim = new Set(rows.filter((r) => r.pid === victim.pid).map((r) => `${r.run_id}/${r.step}`))
  const rolledBack = [...begun].filter((k) => !committedByVictim.has(k))
  console.log(
    `(f) victim held ${held!.n} runs at the kill; ${rolledBack.length} transactions in flight were rolled back and ran once on a survivor; ` +
      `0 of 600 transaction steps ran twice (plain steps in (b): ${plainRanAgain ?? 'not run'} in-flight steps ran again)`,
  )
})

it('(c) a paused owner (SIGSTOP past the lease) is resumed: its late step result is refused', { timeout: 60_000 }, async () => {
  const p1 = await startWorker()
  const h = await wf.pausable.start(undefined, { workflowId: 'pause-1' })
  await p1.waitFor(/STEP-STARTED/)
  p1.kill('SIGSTOP')
  const p2 = await startWorker()
  const out = (await h.result('30s')) as { pid: number }
  expect(out.pid).toBe(p2.pid) // taken over after the lease went stale
  p1.kill('SIGCONT')
  await p1.waitFor(/refused/, 90_000)
  const steps = await db.query<{ step_name: string; result: { v: number }; fence: number }>(`SELECT step_name, result, fence FROM _onepipe_workflow_steps WHERE workflow_id = 'pause-1'`)
  expect(steps).toHaveLength(1)
  expect(steps[0]!.result.v).toBe(p2.pid)
  expect(steps[0]!.fence).toBe(2)
  const [run] = await db.query<{ status: string; output: { v: { pid: number } } }>(`SELECT status, output FROM _onepipe_workflows WHERE workflow_id = 'pause-1'`)
  expect(run).toMatchObject({ status: 'completed', output: { v: { pid: p2.pid } } })
  // Both owners ran the step's effect (the paused one before it was fenced off); only p2's result counts.
  expect((await effects('pause-1')).map((e) => e.pid)).toEqual([p1.pid, p2.pid])
})

it('(d) cancel from another process stops a run mid-step before its next step; the finishing step cannot overwrite the cancelled status', { timeout: 60_000 }, async () => {
  const p1 = await startWorker()
  const h = await wf.cancellable.start(undefined, { workflowId: 'cancel-1' })
  await p1.waitFor(/ONE-STARTED/)
  await h.cancel()
  await expect(h.result('20s')).rejects.toMatchObject({ code: 'WORKFLOW_CANCELLED' })
  await p1.waitFor(/refused/, 90_000) // step one finished after the cancel: its result was refused
  await sleep(300)
  const [run] = await db.query<{ status: string }>(`SELECT status FROM _onepipe_workflows WHERE workflow_id = 'cancel-1'`)
  expect(run!.status).toBe('cancelled')
  expect((await effects('cancel-1')).map((e) => e.step)).toEqual(['one'])
  expect(await db.query(`SELECT step_name FROM _onepipe_workflow_steps WHERE workflow_id = 'cancel-1'`)).toEqual([])
})

it('(e) under serve(): a run started over HTTP survives kill -9 of its app mid-step; a new app recovers it at start-up with no recover() call', { timeout: 60_000 }, async () => {
  const serveApp = fileURLToPath(new URL('./fixtures/serve-app.mjs', import.meta.url))
  const env = { DATABASE_URL: url ?? '', SCHEMA: schema, ONEPIPE_WORKFLOW_HEARTBEAT: '300ms', ONEPIPE_WORKFLOW_STALE_AFTER: '1500ms', ONEPIPE_WORKFLOW_POLL: '200ms', LOG_LEVEL: 'warn' }
  const a1 = spawnNode(serveApp, [], env)
  procs.push(a1)
  const port1 = Number(/PORT=(\d+)/.exec(await a1.waitFor(/PORT=\d+/))![1])
  const res = await fetch(`http://127.0.0.1:${port1}/__onepipe/workflows/batch/start`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ workflowId: 'served-1', input: { ms: { a: 50, b: 4000, c: 50 } } }),
  })
  expect(res.status).toBe(201)
  await until(async () => (await effects('served-1')).some((e) => e.step === 'b'), 20_000, 'step b to start')
  a1.kill('SIGKILL')
  await a1.exited
  const a2 = spawnNode(serveApp, [], env)
  procs.push(a2)
  const port2 = Number(/PORT=(\d+)/.exec(await a2.waitFor(/PORT=\d+/))![1])
  const run = await until(async () => {
    const body = (await (await fetch(`http://127.0.0.1:${port2}/__onepipe/workflows/runs/served-1`)).json()) as { run: { status: string }; steps: { stepId: string }[] }
    return body.run.status === 'completed' && body
  }, 30_000, 'the run to complete on the new app')
  expect(run.steps.map((s) => s.stepId)).toEqual(['a', 'b', 'c'])
  const counts = (await effects('served-1')).reduce<Record<string, number>>((m, e) => ({ ...m, [e.step]: (m[e.step] ?? 0) + 1 }), {})
  expect(counts).toEqual({ a: 1, b: 2, c: 1 }) // b was executing at the kill: the one step allowed to run again
})
