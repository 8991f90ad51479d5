// The dashboard as an operator uses it, in headless chromium against a real
// app (docs/dashboard.md): login, live pipelines, stage rerun, API keys,
// roles, people's accounts, a workflow signal, a cron trigger, a flow's live
// tail, and axe-core on every page.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { z } from 'zod'
import { Auth, Cron, Flow, Pipeline, Workflow } from '@onepipe/sdk'
import { ControlPlane } from '@onepipe/pipelines'
import { serve, type App } from '@onepipe/runtime'
import { testDatabase, waitFor } from '@onepipe/testing'
import { browserAvailable, expectAccessible, launch, login, newContext, shot } from './helpers.js'

const PASSWORD = 'correct horse battery staple'
let t: Awaited<ReturnType<typeof testDatabase>>
let app: App
let auth: Auth
let browser: Browser
let appId: string
let workerKey: string
let events: ReturnType<typeof makeFlow>
const makeFlow = (db: Awaited<ReturnType<typeof testDatabase>>['db']) => Flow.create('e2e-events').schema(z.object({ n: z.number() })).db(db).build()

const bp = Pipeline.create('e2e-bp').stage('fetch', { handler: 'e2e.fetch' }).stage('store', { handler: 'e2e.store', retry: { attempts: 1 } }).build()
const cp = ControlPlane.create().port(0).templates([bp]).build()
const approval = Workflow.create('e2e-approval')
  .input(z.object({ order: z.string() }))
  .define(async (ctx, input) => {
    const decision = await ctx.waitForSignal<{ ok: boolean }>('approve', { timeout: '10m' })
    return { order: input.order, approved: decision?.ok === true }
  })
  .build()
const report = Cron.create('e2e-report').schedule('0 3 * * *').handler(() => ({ rows: 42 })).build()

/** The test worker: pulls one job of `handler` with `key` and acks it. */
async function work(handler: string, status: 'completed' | 'failed', key = workerKey): Promise<{ pipelineId: string }> {
  const headers = { 'x-api-key': key, 'content-type': 'application/json' }
  const pulled = await fetch(`${cp.url}/jobs/pull`, { method: 'POST', headers, body: JSON.stringify({ handlers: [handler], waitMs: 20_000 }) })
  expect(pulled.status).toBe(200)
  const job = ((await pulled.json()) as { jobs: { executionId: string; pipelineId: string }[] }).jobs[0]
  if (!job) throw new Error(`no job for ${handler}`)
  const body = status === 'completed' ? { executionId: job.executionId, status, output: { by: 'e2e' } } : { executionId: job.executionId, status, error: { code: 'DISK_FULL', message: 'no space left' } }
  const acked = await fetch(`${cp.url}/jobs/ack`, { method: 'POST', headers, body: JSON.stringify(body) })
  expect(acked.status).toBe(200)
  return { pipelineId: job.pipelineId }
}

async function createPipeline(key = workerKey): Promise<string> {
  const res = await fetch(`${cp.url}/pipelines`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ template: 'e2e-bp', input: { url: 'https://example.test/a.csv' } }) })
  expect(res.status).toBe(201)
  return ((await res.json()) as { pipelineId: string }).pipelineId
}

const base = () => app.url
const page$ = async (ctx: BrowserContext): Promise<Page> => {
  const p = await ctx.newPage()
  p.setDefaultTimeout(30_000)
  return p
}
const row = (id: string, status?: string) => `[data-testid="pipeline-row"][data-id="${id}"]${status ? `[data-status="${status}"]` : ''}`

describe.skipIf(!browserAvailable)('the dashboard in a browser', () => {
  let admin: BrowserContext
  let adminPage: Page

  beforeAll(async () => {
    t = await testDatabase()
    auth = Auth.create('main').secret('dashboard-browser-test-secret-32chars!').db(t.db).build()
    events = makeFlow(t.db)
    app = await serve({ db: t.db, auth, flows: [events], workflows: [approval], cron: [report], pipelines: [bp, cp], port: 0, hostname: '127.0.0.1', streams: false, handleSignals: false })
    await auth.users.create({ email: 'admin@e2e.test', password: PASSWORD, roles: ['admin'] })
    await auth.users.create({ email: 'viewer@e2e.test', password: PASSWORD, roles: ['viewer'] })
    appId = (await auth.applications.create({ name: 'e2e-workers' })).id
    workerKey = (await auth.apiKeys.create(appId, { name: 'worker' })).key
    browser = await launch()
    admin = await newContext(browser)
    adminPage = await page$(admin)
  }, 120_000)
  afterAll(async () => {
    await browser?.close()
    await app?.shutdown('test')
    await t?.cleanup()
  })

  it('a wrong password shows the error; the right one logs in', async () => {
    const page = adminPage
    await page.goto(`${base()}/__onepipe/dashboard/login`)
    await expectAccessible(page, 'login page')
    await page.getByTestId('login-email').fill('admin@e2e.test')
    await page.getByTestId('login-password').fill('not the password')
    await page.getByTestId('login-submit').click()
    const err = page.getByTestId('login-error')
    await err.waitFor()
    expect(await err.textContent()).toMatch(/INVALID_CREDENTIALS|password/i)
    await shot(page, 'login-error')
    await login(page, base(), 'admin@e2e.test', PASSWORD)
    await expectAccessible(page, 'overview')
    await shot(page, 'overview')
  })

  it('a pipeline created by a worker moves from Running to Completed on screen without a reload', async () => {
    const page = adminPage
    await page.goto(`${base()}/__onepipe/dashboard/pipelines`)
    await page.getByTestId('pipeline-filters').waitFor()
    await expectAccessible(page, 'pipelines')
    const id = await createPipeline()
    await page.waitForSelector(row(id, 'Running'))
    await work('e2e.fetch', 'completed')
    await work('e2e.store', 'completed')
    await page.waitForSelector(row(id, 'Completed'))
    await shot(page, 'pipeline-completed-live')
  })

  it('a failed stage is rerun from the UI and completes', async () => {
    const page = adminPage
    const id = await createPipeline()
    await work('e2e.fetch', 'completed')
    await work('e2e.store', 'failed')
    await page.goto(`${base()}/__onepipe/dashboard/pipelines/${id}`)
    await page.waitForSelector('[data-testid="stage-row"][data-stage="store"][data-status="Failed"]')
    await page.getByTestId('stage-graph').waitFor()
    await expectAccessible(page, 'pipeline detail')
    await shot(page, 'stage-failed')
    await page.locator('[data-testid="stage-rerun"][data-stage="store"]').click()
    await page.waitForSelector('[data-testid="stage-row"][data-stage="store"]:not([data-status="Failed"])')
    await work('e2e.store', 'completed')
    await page.waitForSelector('[data-testid="stage-row"][data-stage="store"][data-status="Completed"]')
    await shot(page, 'stage-rerun-completed')
  })

  it('an API key is shown once, then disabled; the worker using it gets 401', async () => {
    const page = adminPage
    await page.goto(`${base()}/__onepipe/dashboard/applications/${appId}`)
    await page.getByTestId('key-create-form').waitFor()
    await expectAccessible(page, 'API keys')
    await page.getByTestId('key-create-name').fill('temporary')
    await page.getByTestId('key-create-submit').click()
    const secret = page.getByTestId('key-secret')
    await secret.waitFor()
    const key = (await secret.inputValue().catch(async () => (await secret.textContent()) ?? '')).trim()
    expect(key.length).toBeGreaterThan(20)
    await shot(page, 'key-shown-once')
    // It works for a worker…
    const id = await createPipeline(key)
    expect(id).toMatch(/^[0-9a-f-]{36}$/)
    // Out of the later tests' way: their worker pulls the oldest ready stage.
    expect((await fetch(`${cp.url}/pipelines/${id}/cancel`, { method: 'POST', headers: { 'x-api-key': workerKey } })).status).toBe(200)
    await page.getByTestId('key-done').click()
    expect(await page.getByTestId('key-secret').count()).toBe(0)
    // …shown once: after a reload the page holds no key.
    await page.reload()
    await page.getByTestId('key-create-form').waitFor()
    expect(await page.content()).not.toContain(key)
    await page.locator('[data-testid="key-row"]', { hasText: 'temporary' }).getByTestId('key-disable').click()
    await waitFor(async () => (await fetch(`${cp.url}/jobs/pull`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ handlers: ['e2e.fetch'], waitMs: 0 }) })).status === 401, { timeoutMs: 30_000, what: 'the disabled key to be refused' })
    await shot(page, 'key-disabled')
  })

  it('a viewer sees no rerun button, and the API answers 403 when the viewer tries anyway', async () => {
    const id = await createPipeline()
    await work('e2e.fetch', 'completed')
    await work('e2e.store', 'failed')
    const ctx = await newContext(browser)
    try {
      const page = await page$(ctx)
      await login(page, base(), 'viewer@e2e.test', PASSWORD)
      await page.goto(`${base()}/__onepipe/dashboard/pipelines/${id}`)
      await page.waitForSelector('[data-testid="stage-row"][data-stage="store"][data-status="Failed"]')
      expect(await page.getByTestId('stage-rerun').count()).toBe(0)
      expect(await page.getByTestId('cancel-pipeline').count()).toBe(0)
      await shot(page, 'viewer-no-actions')
      const detail = (await (await app.request(`/__onepipe/pipelines/${id}`, { headers: { authorization: `Bearer ${(await auth.login('admin@e2e.test', PASSWORD)).accessToken}` } })).json()) as { stages: { id: string; name: string }[] }
      const stageId = detail.stages.find((s) => s.name === 'store')!.id
      const status = await page.evaluate(async (sid) => {
        const csrf = /onepipe_csrf=([^;]+)/.exec((globalThis as unknown as { document: { cookie: string } }).document.cookie)?.[1] ?? ''
        const r = await fetch(`/__onepipe/pipelines/stages/${sid}/rerun`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: '{}' })
        return r.status
      }, stageId)
      expect(status).toBe(403)
    } finally {
      await ctx.close()
    }
  })

  it('a workflow waiting for a signal is signalled from the UI and completes', async () => {
    const page = adminPage
    const h = await approval.start({ order: 'A-17' })
    await waitFor(async () => (await approval.get(h.workflowId))?.status === 'running', { timeoutMs: 30_000, what: 'the run to wait for its signal' })
    await page.goto(`${base()}/__onepipe/dashboard/workflows/runs/${encodeURIComponent(h.workflowId)}`)
    await page.getByTestId('wf-signal-form').waitFor()
    await expectAccessible(page, 'workflow run')
    await page.getByTestId('wf-signal-name').fill('approve')
    await page.getByTestId('wf-signal-data').fill('{"ok": true}')
    await page.getByTestId('wf-signal-submit').click()
    await waitFor(async () => (await approval.get(h.workflowId))?.status === 'completed', { timeoutMs: 30_000, what: 'the run to complete' })
    expect((await approval.get(h.workflowId))?.output).toEqual({ order: 'A-17', approved: true })
    await page.waitForSelector('[data-testid="wf-status"][data-status="completed"]')
    await shot(page, 'workflow-signalled')
  })

  it('a cron job is triggered from the UI and its run appears', async () => {
    const page = adminPage
    await page.goto(`${base()}/__onepipe/dashboard/cron`)
    await page.locator('[data-testid="cron-row"]', { hasText: 'e2e-report' }).waitFor()
    await expectAccessible(page, 'cron')
    await page.locator('[data-testid="cron-row"]', { hasText: 'e2e-report' }).getByTestId('cron-trigger').click()
    await page.getByTestId('cron-triggered').waitFor()
    await page.goto(`${base()}/__onepipe/dashboard/cron/e2e-report`)
    await page.waitForSelector('[data-testid="cron-execution"][data-kind="manual"][data-status="completed"]', { timeout: 30_000 }).catch(async () => {
      // The history is read when the page opens; the run may finish just after.
      await page.reload()
      await page.waitForSelector('[data-testid="cron-execution"][data-kind="manual"][data-status="completed"]')
    })
    await shot(page, 'cron-triggered')
  })

  it("a flow's live tail shows a newly appended event (time to screen logged; the bound is measured in bench/dashboard)", async () => {
    const page = adminPage
    await page.goto(`${base()}/__onepipe/dashboard/flows?name=e2e-events`)
    await page.getByTestId('flow-live-toggle').check()
    await page.waitForSelector('[data-testid="flow-live-state"][data-state="live"]')
    await expectAccessible(page, 'flows')
    const t0 = Date.now()
    const appended = await events.append({ n: 7 })
    await page.waitForSelector(`[data-testid="flow-live-item"][data-offset="${appended.offset}"]`)
    console.log(`flow live tail: event on screen ${Date.now() - t0} ms after append`)
    await shot(page, 'flow-live-tail')
  })

  it('a 403 page names the role when a viewer opens an admin page', async () => {
    const ctx = await newContext(browser)
    try {
      const page = await page$(ctx)
      await login(page, base(), 'viewer@e2e.test', PASSWORD)
      await page.goto(`${base()}/__onepipe/dashboard/applications`)
      await page.getByTestId('forbidden').waitFor()
      expect(await page.getByTestId('forbidden-role').textContent()).toContain('admin')
      await expectAccessible(page, 'forbidden')
      await shot(page, 'forbidden')
    } finally {
      await ctx.close()
    }
  })

  it('an admin creates a user, changes their roles and disables them; the disabled user cannot log in', async () => {
    const page = adminPage
    const ops = '[data-testid="user-row"][data-email="ops@e2e.test"]'
    await page.goto(`${base()}/__onepipe/dashboard/users`)
    await page.getByTestId('users-table').waitFor()
    await expectAccessible(page, 'users')
    await page.getByTestId('user-create-email').fill('ops@e2e.test')
    await page.getByTestId('user-create-password').fill(PASSWORD)
    await page.getByTestId('user-role-operator').check()
    await page.getByTestId('user-create-submit').click()
    await page.getByTestId('user-created').waitFor()
    await page.waitForSelector(`${ops}[data-roles="operator"][data-disabled="false"]`)
    expect(await page.getByTestId('user-create-email').inputValue()).toBe('')
    expect(await page.getByTestId('user-create-password').inputValue()).toBe('')
    expect(await page.getByTestId('user-role-operator').isChecked()).toBe(false)
    await shot(page, 'user-created')

    // A bad email: the API's error names the field and no account is made.
    const rows = await page.getByTestId('user-row').count()
    await page.getByTestId('user-create-email').fill('not-an-email')
    await page.getByTestId('user-create-password').fill(PASSWORD)
    await page.getByTestId('user-create-submit').click()
    const invalid = page.locator('[data-testid="api-error"][data-code="VALIDATION_FAILED"]')
    await invalid.waitFor()
    expect(await invalid.getByTestId('error-issues').textContent()).toContain('email')
    expect(await page.getByTestId('user-created').count()).toBe(0)
    await expectAccessible(page, 'users, a create refused')
    await shot(page, 'user-create-error')
    expect(await page.getByTestId('user-row').count()).toBe(rows)
    expect((await auth.users.list()).map((u) => u.email)).not.toContain('not-an-email')

    const row = page.locator(ops)
    await row.getByTestId('user-roles-edit-operator').uncheck()
    await row.getByTestId('user-roles-edit-viewer').check()
    await row.getByTestId('user-roles-save').click()
    await page.waitForSelector(`${ops}[data-roles="viewer"]`)
    const asOps = await newContext(browser)
    try {
      const p = await page$(asOps)
      await login(p, base(), 'ops@e2e.test', PASSWORD)
      expect(await p.getByTestId('current-user').getAttribute('data-roles')).toBe('viewer')
      expect(await p.getByTestId('nav-users').count()).toBe(0)
    } finally {
      await asOps.close()
    }

    // The admin's own account stays enabled: the refusal is shown.
    await page.locator('[data-testid="user-row"][data-email="admin@e2e.test"]').getByTestId('user-disable').click()
    await page.locator('[data-testid="api-error"]', { hasText: 'own account' }).waitFor()
    expect(await page.locator('[data-testid="user-row"][data-email="admin@e2e.test"]').getAttribute('data-disabled')).toBe('false')

    await row.getByTestId('user-disable').click()
    await page.waitForSelector(`${ops}[data-disabled="true"]`)
    await row.getByTestId('user-enable').waitFor()
    await expectAccessible(page, 'users, one disabled')
    await shot(page, 'user-disabled')
    const again = await newContext(browser)
    try {
      const p = await page$(again)
      await p.goto(`${base()}/__onepipe/dashboard/login`)
      await p.getByTestId('login-email').fill('ops@e2e.test')
      await p.getByTestId('login-password').fill(PASSWORD)
      await p.getByTestId('login-submit').click()
      const refused = p.getByTestId('login-error')
      await refused.waitFor()
      expect(await refused.getAttribute('data-code')).toBe('ACCOUNT_DISABLED')
      await shot(p, 'user-disabled-login')
    } finally {
      await again.close()
    }
  })
})
