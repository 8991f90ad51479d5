import { randomBytes } from 'node:crypto'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Auth, Cron, Database, Flow, Workflow, WorkflowEngine, type RunInfo, type StepInfo } from '@onepipe/sdk'
import { postgresUrl, requireService, spawnNode, uniqueName, waitFor } from '@onepipe/testing'
import { harness, onepipe, runEnv } from './fixtures/ops-cli/run.js'

// The operator commands against PostgreSQL, each test in a schema of its own
// (ONEPIPE_DB_SCHEMA), dropped after. requireService fails, never skips, when
// the server is missing.

const url = postgresUrl()
const secret = randomBytes(48).toString('base64')
let schema = ''
const open: { close(): Promise<void> }[] = []

const env = () => ({ DATABASE_URL: url, ONEPIPE_DB_SCHEMA: schema, ONEPIPE_AUTH_SECRET: secret })
const json = <T>(stdout: string) => JSON.parse(stdout) as T

/** A Database on the test's schema, migrated, closed after the test. */
async function testDb(): Promise<Database> {
  const db = Database.create('ops-test').postgres(url).schema(schema).pool({ max: 4 }).build()
  open.push(db)
  await db.ready()
  return db
}

beforeAll(() => requireService('postgres'))
afterEach(async () => {
  // Last opened, first closed: engines and jobs before their database.
  for (const o of open.splice(0).reverse()) await o.close()
  const look = Database.create('ops-drop').postgres(url).autoMigrate(false).build()
  try {
    await look.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await look.close()
  }
})

function freshSchema(): void {
  schema = uniqueName('cli_ops')
}

describe('onepipe migrate status|up and db reset on PostgreSQL', () => {
  it('shows every migration pending, then applied after up; db reset refuses without --force and in production, then empties the schema', async () => {
    freshSchema()
    type Status = { databases: { schema: string; sources: { source: string; applied: number; pending: number }[]; migrations: { status: string }[] }[] }
    const before = await onepipe(['migrate', 'status', '--json'], env())
    expect(before.code).toBe(0)
    const b = json<Status>(before.stdout).databases[0]
    expect(b?.schema).toBe(schema)
    expect(b?.sources[0]).toMatchObject({ source: 'onepipe', applied: 0 })
    expect(b?.migrations.every((m) => m.status === 'pending')).toBe(true)

    const up = await onepipe(['migrate', 'up'], env())
    expect(up.code).toBe(0)
    const applied = json<{ applied: string[] }>(up.stdout).applied
    expect(applied.length).toBe(b?.migrations.length)

    const after = json<Status>((await onepipe(['migrate', 'status', '--json'], env())).stdout).databases[0]
    expect(after?.sources[0]).toMatchObject({ source: 'onepipe', applied: applied.length, pending: 0 })
    const table = await onepipe(['migrate', 'status'], env())
    expect(table.stdout).toMatch(new RegExp(`^onepipe\\s+${applied.length}\\s+0\\s+\\d{6}_\\w+$`, 'm'))

    const refused = await onepipe(['db', 'reset'], env())
    expect(refused.code).toBe(2)
    const prod = await onepipe(['db', 'reset', '--force'], { ...env(), NODE_ENV: 'production' })
    expect(prod.code).toBe(1)
    expect(prod.stderr).toMatch(/^onepipe: DB_RESET_IN_PRODUCTION: /)
    const still = json<Status>((await onepipe(['migrate', 'status', '--json'], env())).stdout).databases[0]
    expect(still?.sources[0]?.pending).toBe(0)

    const reset = await onepipe(['db', 'reset', '--force', '--json'], env())
    expect(reset.code).toBe(0)
    expect(json<{ schema: string }>(reset.stdout).schema).toBe(schema)
    const empty = json<Status>((await onepipe(['migrate', 'status', '--json'], env())).stdout).databases[0]
    expect(empty?.sources[0]).toMatchObject({ applied: 0, pending: applied.length })
  })
})

describe('onepipe users create and keys create on PostgreSQL', () => {
  it('creates accounts that log in through the Auth and a key that authenticates', async () => {
    freshSchema()
    const db = await testDb()
    const auth = Auth.create('main').db(db).secret(secret).build()
    open.push(auth)

    const generated = await onepipe(['users', 'create', '--email', 'ada@example.com', '--role', 'operator', '--json'], env())
    expect(generated.stderr).toBe('')
    const g = json<{ user: { email: string; roles: string[] }; password: string }>(generated.stdout)
    expect(g.user).toMatchObject({ email: 'ada@example.com', roles: ['operator'] })
    const s1 = await auth.login('ada@example.com', g.password)
    expect(s1.user.roles).toEqual(['operator'])

    const piped = await onepipe(['users', 'create', '--email', 'grace@example.com', '--role', 'viewer', '--password-stdin'], env(), { input: 'correct horse battery staple\n' })
    expect(piped.code).toBe(0)
    expect(piped.stdout).toMatch(/^user:\s+grace@example\.com$/m)
    expect(piped.stdout).not.toMatch(/password:/)
    expect((await auth.login('grace@example.com', 'correct horse battery staple')).user.roles).toEqual(['viewer'])

    const taken = await onepipe(['users', 'create', '--email', 'ADA@example.com', '--role', 'admin'], env())
    expect(taken.code).toBe(1)
    expect(taken.stderr).toMatch(/^onepipe: EMAIL_TAKEN: /)
    const noSecret = await onepipe(['users', 'create', '--email', 'x@example.com', '--role', 'admin'], { ...env(), ONEPIPE_AUTH_SECRET: undefined })
    expect(noSecret.code).toBe(1)
    expect(noSecret.stderr).toMatch(/^onepipe: AUTH_SECRET_MISSING: Set ONEPIPE_AUTH_SECRET/)

    const k = await onepipe(['keys', 'create', '--app', 'billing-worker', '--role', 'operator'], env())
    expect(k.code).toBe(0)
    const key = /^key:\s+(op_\S+)$/m.exec(k.stdout)?.[1]
    expect(key).toBeDefined()
    const caller = await auth.authenticate(new Request('http://localhost/api', { headers: { 'X-API-Key': key ?? '' } }))
    expect(caller).toMatchObject({ kind: 'application', roles: ['operator'] })

    const second = json<{ applicationCreated: boolean; key: string; application: { name: string } }>((await onepipe(['keys', 'create', '--app', 'billing-worker', '--name', 'ci', '--json'], env())).stdout)
    expect(second).toMatchObject({ applicationCreated: false, application: { name: 'billing-worker' } })
    expect(await auth.authenticate(new Request('http://localhost/api', { headers: { 'X-API-Key': second.key } }))).toMatchObject({ kind: 'application', roles: [] })
    await expect(auth.authenticate(new Request('http://localhost/api', { headers: { 'X-API-Key': `${second.key}x` } }))).rejects.toThrow(/API key is not valid/)
  })
})

describe('onepipe flows list|tail on PostgreSQL', () => {
  it('lists flows with head and counts, tails from an offset, and follows new events until SIGTERM', async () => {
    freshSchema()
    const db = await testDb()
    const orders = Flow.create('orders').db(db).build()
    open.push(orders)
    for (let i = 1; i <= 3; i++) await orders.append({ n: i })
    await Flow.create('audit').db(db).build().append({ who: 'ada' })

    const list = await onepipe(['flows', 'list', '--json'], env())
    expect(list.code).toBe(0)
    expect(json<{ flows: { name: string; head: number; events: number }[] }>(list.stdout).flows.map(({ name, head, events }) => ({ name, head, events }))).toEqual([
      { name: 'audit', head: 1, events: 1 },
      { name: 'orders', head: 3, events: 3 },
    ])
    expect((await onepipe(['flows', 'list'], env())).stdout).toMatch(/^orders\s+3\s+3\s+\d{4}-/m)

    const tail = await onepipe(['flows', 'tail', 'orders', '--from', '1', '--json'], env())
    expect(tail.stdout.trim().split('\n').map((l) => json<{ offset: number; data: unknown }>(l)).map((e) => [e.offset, e.data])).toEqual([[2, { n: 2 }], [3, { n: 3 }]])
    const last = await onepipe(['flows', 'tail', 'orders', '--limit', '1'], env())
    expect(last.stdout).toMatch(/^3 {2}\S+ {2}\{"n":3\}\n$/)
    const missing = await onepipe(['flows', 'tail', 'nope'], env())
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/^onepipe: FLOW_NOT_FOUND: /)

    const follow = spawnNode(harness, ['flows', 'tail', 'orders', '--follow', '--json', '--limit', '1'], runEnv(env()))
    await follow.waitFor(/"offset":3/)
    await orders.append({ n: 4 })
    await orders.append({ n: 5 })
    await follow.waitFor(/"offset":5/)
    follow.kill('SIGTERM')
    expect(await follow.exited).toBe(0)
    const offsets = follow.output().trim().split('\n').map((l) => json<{ offset: number }>(l).offset)
    expect(offsets).toEqual([3, 4, 5])
  })
})

describe('onepipe workflows list|show|cancel on PostgreSQL', () => {
  it('lists a run started with the Workflow primitive, shows its steps, cancels it through the engine path', async () => {
    freshSchema()
    const db = await testDb()
    const approve = Workflow.create('approve-order')
      .db(db)
      .define(async (ctx) => {
        await ctx.step('reserve', () => ({ reserved: true }))
        return ctx.waitForSignal('approval')
      })
      .build()
    const engine = new WorkflowEngine({ db, workflows: [approve], poll: '100ms' })
    await engine.start()
    open.push({ close: () => engine.stop() })
    await approve.start({ orderId: 'o1' }, { workflowId: 'order-o1' })
    // Once it waits for the signal: one step done, one waiting.
    await waitFor(async () => (await approve.steps('order-o1')).length === 2)

    const list = await onepipe(['workflows', 'list', '--name', 'approve-order', '--json'], env())
    expect(list.code).toBe(0)
    expect(json<{ runs: RunInfo[] }>(list.stdout).runs.map((r) => [r.workflowId, r.status])).toEqual([['order-o1', 'running']])
    expect((await onepipe(['workflows', 'list', '--status', 'completed', '--json'], env())).stdout).toContain('"runs": []')
    expect((await onepipe(['workflows', 'list'], env())).stdout).toMatch(/^order-o1\s+approve-order\s+running\s/m)

    const show = json<{ run: RunInfo; steps: StepInfo[] }>((await onepipe(['workflows', 'show', 'order-o1', '--json'], env())).stdout)
    expect(show.run).toMatchObject({ workflowId: 'order-o1', input: { orderId: 'o1' } })
    expect(show.steps.map((s) => [s.stepId, s.status, s.result])).toEqual([
      ['reserve', 'completed', { reserved: true }],
      ['$signal:approval', 'waiting', undefined],
    ])
    expect((await onepipe(['workflows', 'show', 'order-o1'], env())).stdout).toMatch(/^reserve\s+completed\s+1\s/m)

    const cancel = await onepipe(['workflows', 'cancel', 'order-o1'], env())
    expect(cancel.stdout).toBe('run order-o1 (approve-order) is cancelled\n')
    expect((await approve.get('order-o1'))?.status).toBe('cancelled')
    const again = await onepipe(['workflows', 'cancel', 'order-o1'], env())
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/^onepipe: WORKFLOW_NOT_RUNNING: /)
    const none = await onepipe(['workflows', 'show', 'order-zz'], env())
    expect(none.code).toBe(1)
    expect(none.stderr).toMatch(/^onepipe: WORKFLOW_RUN_NOT_FOUND: /)
  })
})

describe('onepipe cron list|trigger on PostgreSQL', () => {
  it('lists a started job with its lease holder and runs a manual trigger on that holder', async () => {
    freshSchema()
    const db = await testDb()
    const ran: string[] = []
    const job = Cron.create('nightly-report')
      .schedule('0 2 * * *')
      .timezone('Europe/Paris')
      .db(db)
      .lease({ ttlMs: 3000, renewMs: 1000 })
      .handler((ctx) => {
        ran.push(ctx.executionId)
        return { rows: 7 }
      })
      .build()
    await job.start()
    open.push({ close: () => job.stop() })
    await waitFor(async () => (await job.info()).lease?.live === true)
    const holder = (await job.info()).lease?.holder

    const list = await onepipe(['cron', 'list', '--json'], env())
    expect(list.code).toBe(0)
    const [j] = json<{ jobs: { name: string; schedule: string; timezone: string; paused: boolean; nextRun: string; leaseHolder: string; leaseLive: boolean }[] }>(list.stdout).jobs
    expect(j).toMatchObject({ name: 'nightly-report', schedule: '0 2 * * *', timezone: 'Europe/Paris', paused: false, leaseHolder: holder, leaseLive: true })
    expect(j?.nextRun).toBe((await job.nextRun())?.toISOString())
    expect((await onepipe(['cron', 'list'], env())).stdout).toMatch(/^nightly-report\s+0 2 \* \* \* \(Europe\/Paris\)\s+no\s+\S+\s+\S+ \(live\)\s+0$/m)

    const t = await onepipe(['cron', 'trigger', 'nightly-report', '--wait', '60', '--json'], env())
    expect(t.stderr).toBe('')
    const r = json<{ executionId: string; leaseHolder: string; execution: { status: string; kind: string; output: unknown; instanceId: string } }>(t.stdout)
    expect(r).toMatchObject({ leaseHolder: holder, execution: { status: 'completed', kind: 'manual', output: { rows: 7 }, instanceId: holder } })
    expect(ran).toEqual([r.executionId])

    const queued = await onepipe(['cron', 'trigger', 'nightly-report'], env())
    expect(queued.stdout).toMatch(/^execution:\s+[0-9a-f-]{36}$/m)
    await waitFor(() => ran.length === 2)
    const unknown = await onepipe(['cron', 'trigger', 'weekly'], env())
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/^onepipe: CRON_JOB_NOT_FOUND: /)
  })
})
