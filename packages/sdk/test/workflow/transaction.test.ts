// ctx.transaction: the step's writes and its recorded result commit in one
// transaction, fenced by the run's lease. Runs on both backends; the
// scenarios that need a second connection while the transaction is open
// (PGlite has one) run on the real backend only.
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { TransportError, Workflow, WorkflowEngine, silentLogger, type Database, type WorkflowEngineOptions } from '@onepipe/sdk'
import { testBackend, testDatabase, waitFor } from '@onepipe/testing'

let db: Database
let cleanup: () => Promise<void>
const engines: WorkflowEngine[] = []
let n = 0
const uid = (p: string) => `${p}-${++n}-${Math.random().toString(36).slice(2, 8)}`
const real = testBackend() === 'real'

beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
  await db.execute('CREATE TABLE tx_rows (run_id text NOT NULL, step text NOT NULL, n int)')
})
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()))
})
afterAll(async () => {
  await cleanup()
})

const FAST = { heartbeat: 100, staleAfter: '5s', poll: 50, logger: silentLogger } as const

async function engine(workflows: NonNullable<WorkflowEngineOptions['workflows']>, o: Partial<WorkflowEngineOptions> = {}): Promise<WorkflowEngine> {
  const e = new WorkflowEngine({ db, ...FAST, ...o, workflows })
  engines.push(e)
  await e.start()
  return e
}

const rows = (run: string) => db.query<{ step: string; n: number | null }>('SELECT step, n FROM tx_rows WHERE run_id = $1 ORDER BY step, n', [run])

function latch(): { wait: Promise<void>; open: () => void } {
  let open!: () => void
  const wait = new Promise<void>((r) => (open = r))
  return { wait, open }
}

it('commits the writes and the recorded result together; replay returns the result without running fn; a step before it is recorded first', async () => {
  let calls = 0
  let sawPrevious: number | undefined
  const wf = Workflow.create(uid('tx'))
    .db(db)
    .define(async (ctx) => {
      const a = await ctx.step('plain', () => 1)
      const id = await ctx.transaction('book', async (tx) => {
        calls++
        // The plain step before it is durable before the transaction starts (order is kept).
        const [prev] = await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM _onepipe_workflow_steps WHERE workflow_id = $1 AND step_name = 'plain'`, [ctx.workflowId])
        sawPrevious = prev?.n
        await tx.execute('INSERT INTO tx_rows (run_id, step, n) VALUES ($1, $2, $3)', [ctx.workflowId, 'book', a])
        return { booked: ctx.workflowId }
      })
      await ctx.sleep(100) // parks: the body replays from the top afterwards
      return id
    })
    .build()
  await engine([wf])
  const h = await wf.start(undefined)
  expect(await h.result('30s')).toEqual({ booked: h.workflowId })
  expect(calls).toBe(1)
  expect(sawPrevious).toBe(1)
  expect(await rows(h.workflowId)).toEqual([{ step: 'book', n: 1 }])
  const steps = await wf.steps(h.workflowId)
  expect(steps.find((s) => s.stepId === 'book')).toMatchObject({ status: 'completed', result: { booked: h.workflowId }, attempts: 1 })
})

it('a permanent error rolls the writes back and fails the step once; replay rethrows it without running fn', async () => {
  let calls = 0
  const wf = Workflow.create(uid('txfail'))
    .db(db)
    .define(async (ctx) => {
      await ctx.transaction('dup', async (tx) => {
        calls++
        await tx.execute('INSERT INTO tx_rows (run_id, step) VALUES ($1, $2)', [ctx.workflowId, 'dup'])
        await tx.execute('CREATE TEMP TABLE once_only (x int)')
        await tx.execute('CREATE TEMP TABLE once_only (x int)') // 42P07: not retryable
      })
      return 'unreachable'
    })
    .build()
  await engine([wf])
  const h = await wf.start(undefined)
  await expect(h.result('30s')).rejects.toMatchObject({ code: 'DB_ERROR' })
  expect(calls).toBe(1)
  expect(await rows(h.workflowId)).toEqual([])
  expect((await wf.steps(h.workflowId))[0]).toMatchObject({ stepId: 'dup', status: 'failed', attempts: 1 })
})

it('a transient error rolls back and retries with the step policy: the writes of the failed attempt are gone', async () => {
  let calls = 0
  const wf = Workflow.create(uid('txretry'))
    .db(db)
    .define(async (ctx) =>
      ctx.transaction(
        'flaky',
        async (tx) => {
          calls++
          await tx.execute('INSERT INTO tx_rows (run_id, step, n) VALUES ($1, $2, $3)', [ctx.workflowId, 'flaky', calls])
          if (calls < 3) throw new TransportError('DB_UNAVAILABLE', 'connection lost')
          return calls
        },
        { retry: { attempts: 3, delay: 10 } },
      ),
    )
    .build()
  await engine([wf])
  const h = await wf.start(undefined)
  expect(await h.result('30s')).toBe(3)
  expect(await rows(h.workflowId)).toEqual([{ step: 'flaky', n: 3 }])
  expect((await wf.steps(h.workflowId))[0]).toMatchObject({ status: 'completed', attempts: 3 })
})

it('a result that cannot round-trip is a terminal INVALID_RESULT and its writes are rolled back', async () => {
  let calls = 0
  const wf = Workflow.create(uid('txbad'))
    .db(db)
    .define(async (ctx) =>
      ctx.transaction('bad', async (tx) => {
        calls++
        await tx.execute('INSERT INTO tx_rows (run_id, step) VALUES ($1, $2)', [ctx.workflowId, 'bad'])
        return { at: new Date() }
      }),
    )
    .build()
  await engine([wf])
  const h = await wf.start(undefined)
  await expect(h.result('30s')).rejects.toMatchObject({ code: 'INVALID_RESULT' })
  expect(calls).toBe(1)
  expect(await rows(h.workflowId)).toEqual([])
})

it('a transaction whose lease check fails is rolled back whole; the run goes on with the next owner and its writes happen once', async () => {
  let calls = 0
  const wf = Workflow.create(uid('txfence'))
    .db(db)
    .define(async (ctx) =>
      ctx.transaction('fenced', async (tx) => {
        calls++
        await tx.execute('INSERT INTO tx_rows (run_id, step, n) VALUES ($1, $2, $3)', [ctx.workflowId, 'fenced', calls])
        // The first time, the run changes hands inside the transaction (as a takeover committed
        // just before the final check would): the check fails and everything here rolls back.
        if (calls === 1) await tx.execute(`UPDATE _onepipe_workflows SET fence = fence + 1 WHERE workflow_id = $1`, [ctx.workflowId])
        return calls
      }),
    )
    .build()
  await engine([wf], { heartbeat: 100, staleAfter: 1500 })
  const h = await wf.start(undefined)
  // Recovered once its lease went stale (the fenced-off execution stopped renewing it).
  expect(await h.result('60s')).toBe(2)
  expect(await rows(h.workflowId)).toEqual([{ step: 'fenced', n: 2 }])
})

it.skipIf(!real)('a takeover that commits while the transaction runs: the late commit is refused and rolled back, the new owner runs fn once', async () => {
  const inside = latch()
  const release = latch()
  let calls = 0
  const wf = Workflow.create(uid('txtake'))
    .db(db)
    .define(async (ctx) =>
      ctx.transaction('slow', async (tx) => {
        const call = ++calls
        await tx.execute('INSERT INTO tx_rows (run_id, step, n) VALUES ($1, $2, $3)', [ctx.workflowId, 'slow', call])
        if (call === 1) {
          inside.open()
          await release.wait
        }
        return call
      }),
    )
    .build()
  const e1 = await engine([wf])
  const h = await wf.start(undefined)
  await inside.wait
  // Another process claims the run (what claimStale does) while the first transaction is open.
  await db.execute(`UPDATE _onepipe_workflows SET owner = 'thief', fence = fence + 1, heartbeat_at = now() WHERE workflow_id = $1`, [h.workflowId])
  release.open()
  await waitFor(async () => e1.running === 0, { what: 'the first execution to stop' })
  expect(await rows(h.workflowId)).toEqual([])
  expect(await db.query(`SELECT step_name FROM _onepipe_workflow_steps WHERE workflow_id = $1`, [h.workflowId])).toEqual([])
  // The thief is gone: its lease goes stale and an engine takes the run over; fn runs once more and commits.
  await db.execute(`UPDATE _onepipe_workflows SET heartbeat_at = now() - interval '1 hour' WHERE workflow_id = $1`, [h.workflowId])
  expect(await h.result('60s')).toBe(2)
  expect(await rows(h.workflowId)).toEqual([{ step: 'slow', n: 2 }])
})

it.skipIf(!real)('a cancel that commits while the transaction runs: the transaction is rolled back and the run stays cancelled', async () => {
  const inside = latch()
  const release = latch()
  const wf = Workflow.create(uid('txcancel'))
    .db(db)
    .define(async (ctx) => {
      await ctx.transaction('slow', async (tx) => {
        await tx.execute('INSERT INTO tx_rows (run_id, step) VALUES ($1, $2)', [ctx.workflowId, 'slow'])
        inside.open()
        await release.wait
      })
      return 'finished'
    })
    .build()
  const e1 = await engine([wf])
  const h = await wf.start(undefined)
  await inside.wait
  await h.cancel()
  release.open()
  await expect(h.result('30s')).rejects.toMatchObject({ code: 'WORKFLOW_CANCELLED' })
  await waitFor(async () => e1.running === 0, { what: 'the execution to stop' })
  expect(await rows(h.workflowId)).toEqual([])
  expect((await wf.get(h.workflowId))?.status).toBe('cancelled')
})

it.skipIf(!real)('an attempt whose commit happened although it was reported failed: the next attempt rolls back and returns the recorded result', async () => {
  const inside = latch()
  const release = latch()
  let calls = 0
  const wf = Workflow.create(uid('txexists'))
    .db(db)
    .define(async (ctx) =>
      ctx.transaction('once', async (tx) => {
        calls++
        await tx.execute('INSERT INTO tx_rows (run_id, step, n) VALUES ($1, $2, $3)', [ctx.workflowId, 'once', calls])
        inside.open()
        await release.wait
        return 'from this attempt'
      }),
    )
    .build()
  await engine([wf])
  const h = await wf.start(undefined)
  await inside.wait
  // What an earlier attempt's lost COMMIT acknowledgement leaves: the step already recorded under this lease.
  const [run] = await db.query<{ fence: number }>('SELECT fence FROM _onepipe_workflows WHERE workflow_id = $1', [h.workflowId])
  await db.execute(
    `INSERT INTO _onepipe_workflow_steps (id, workflow_id, step_name, status, result, attempts, fence) VALUES ($1 || '/once', $1, 'once', 'completed', '{"v":"recorded before"}'::jsonb, 1, $2)`,
    [h.workflowId, run!.fence],
  )
  release.open()
  expect(await h.result('30s')).toBe('recorded before')
  expect(await rows(h.workflowId)).toEqual([])
  expect(calls).toBe(1)
})
