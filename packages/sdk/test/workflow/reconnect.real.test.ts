// Workflow wake-ups survive a lost LISTEN connection: a NOTIFY sent while the
// engine's listening connection is down is gone, so after the reconnect the
// engine looks for due runs and for cancelled ones at once. The engine here
// polls once an hour and renews leases every 10 minutes, so nothing but the
// reconnect can make it look. "A notification lost in the gap" is a change
// written with no NOTIFY at all before the listening connection is killed.
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { Database, Workflow, WorkflowEngine, silentLogger } from '@onepipe/sdk'
import { postgresUrl, testDatabase, uniqueName, waitFor } from '@onepipe/testing'

let db: Database
let schema: string
let cleanup: () => Promise<void>
const closers: (() => Promise<void>)[] = []

beforeAll(async () => {
  ;({ db, schema, cleanup } = await testDatabase({ backend: 'real' }))
})
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
})
afterAll(async () => {
  await cleanup()
})

/** An engine on a Database of its own, so its LISTEN connection can be found by application name. */
async function quietEngine(wf: (edb: Database) => Workflow<unknown, unknown>): Promise<{ edb: Database; appName: string; engine: WorkflowEngine; wf: Workflow<unknown, unknown> }> {
  const name = uniqueName('wfr')
  const edb = Database.create(name).postgres(postgresUrl()).schema(schema).pool({ max: 4 }).build()
  const w = wf(edb)
  const engine = new WorkflowEngine({ db: edb, workflows: [w], poll: '1h', heartbeat: '10m', staleAfter: '30m', logger: silentLogger })
  await engine.start()
  closers.push(() => edb.close(), () => engine.stop())
  return { edb, appName: `onepipe:${name}@%`, engine, wf: w }
}

/** Kills the engine's LISTEN backend; postgres.js reconnects and listens again. */
async function killListener(appName: string): Promise<void> {
  const killed = await waitFor(
    async () => (await db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1 AND query ILIKE 'listen%'`, [appName])).length,
    { what: 'the engine’s LISTEN connection' },
  )
  expect(killed).toBe(1)
}

it('a run made due while the LISTEN connection was down is claimed as soon as it reconnects', async () => {
  const name = uniqueName('due').replace(/_/g, '-')
  const { appName } = await quietEngine((edb) => Workflow.create(name).db(edb).define(async (ctx) => ctx.step('s', () => 'ran')).build())
  // A start whose NOTIFY was lost: the row is due, and nobody was told.
  await db.execute(`INSERT INTO _onepipe_workflows (workflow_id, workflow_name, status, input, fence, wake_at) VALUES ($1, $2, 'pending', '{"v":null}'::jsonb, 0, now())`, [`${name}-1`, name])
  await killListener(appName)
  await waitFor(async () => (await db.query<{ status: string }>('SELECT status FROM _onepipe_workflows WHERE workflow_id = $1', [`${name}-1`]))[0]?.status === 'completed', {
    timeoutMs: 60_000,
    what: 'the run to be claimed and completed after the reconnect',
  })
})

it('a run cancelled while the LISTEN connection was down stops its step as soon as it reconnects', async () => {
  const name = uniqueName('cxl').replace(/_/g, '-')
  let started!: () => void
  const inStep = new Promise<void>((r) => (started = r))
  let aborted = false
  const { appName, wf } = await quietEngine(
    (edb) =>
      Workflow.create(name)
        .db(edb)
        .define(async (ctx) =>
          ctx.step('wait', async (signal) => {
            started()
            await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
            aborted = true
          }),
        )
        .build(),
  )
  const h = await wf.start(undefined)
  await inStep
  // A cancel whose NOTIFY was lost.
  await db.execute(`UPDATE _onepipe_workflows SET status = 'cancelled', owner = NULL, heartbeat_at = NULL, completed_at = now() WHERE workflow_id = $1`, [h.workflowId])
  await killListener(appName)
  await waitFor(() => aborted, { timeoutMs: 60_000, what: 'the step to see ctx.signal aborted after the reconnect' })
  expect((await wf.get(h.workflowId))?.status).toBe('cancelled')
})
