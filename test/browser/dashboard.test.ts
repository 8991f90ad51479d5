// The dashboard as an operator uses it, in headless chromium against a real
// app (docs/dashboard.md): login, live pipelines, stage rerun, API keys (with
// the confirmation before disabling one), roles, people's accounts, a
// workflow signal, a cron trigger, a flow's live tail, setting a signal, and
// axe-core on every page, in a 1280×800 window no table overflows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { z } from 'zod'
import { Auth, Cron, Flow, Pipeline, Signal, Workflow } from '@onepipe/sdk'
import { ControlPlane } from '@onepipe/pipelines'
import { serve, type App } from '@onepipe/runtime'
import { testDatabase, waitFor } from '@onepipe/testing'
import { expectAccessible, expectNoSidewaysScroll, launch, login, newContext, shot } from './helpers.js'

const PASSWORD = 'correct horse battery staple'
let t: Awaited<ReturnType<typeof testDatabase>>
let app: App
let auth: Auth
let browser: Browser
let appId: string
let workerKey: string
let events: ReturnType<typeof makeFlow>
let flag: ReturnType<typeof makeFlag>
const makeFlow = (db: Awaited<ReturnType<typeof testDatabase>>['db']) => Flow.create('e2e-events').schema(z.object({ n: z.number() })).db(db).build()
const makeFlag = (db: Awaited<ReturnType<typeof testDatabase>>['db']) => Signal.create('e2e-flag').schema(z.boolean()).default(false).db(db).build()

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

describe('the dashboard in a browser', () => {
  let admin: BrowserContext
  let adminPage: Page

  beforeAll(async () => {
    t = await testDatabase()
    auth = Auth.create('main').secret('dashboard-browser-test-secret-32chars!').db(t.db).build()
    events = makeFlow(t.db)
    flag = makeFlag(t.db)
    app = await serve({ db: t.db, auth, flows: [events], signals: [flag], workflows: [approval], cron: [report], pipelines: [bp, cp], port: 0, hostname: '127.0.0.1', streams: false, handleSignals: false })
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
    expect(await page.getByTestId('login-password').getAttribute('aria-describedby')).toBe(await err.getAttribute('id'))
    await shot(page, 'login-error')
    // A new attempt without a password: the old refusal goes, the missing field is named.
    await page.getByTestId('login-password').fill('')
    await page.getByTestId('login-submit').click()
    await page.getByTestId('login-password-error').waitFor()
    expect(await page.getByTestId('login-error').count()).toBe(0)
    expect(await page.title()).toBe('Log in · OnePipe')
    await login(page, base(), 'admin@e2e.test', PASSWORD)
    await expectAccessible(page, 'overview')
    expect(await page.title()).toBe('Overview · OnePipe')
    await expectNoSidewaysScroll(page, 'overview')
    await shot(page, 'overview')
    // An address the console does not have keeps the layout; a cron job the app does not have says so.
    await page.goto(`${base()}/__onepipe/dashboard/nope`)
    await page.getByRole('heading', { name: 'Page not found' }).waitFor()
    await page.getByTestId('nav-overview').waitFor()
    // The first Tab of a freshly loaded page reaches the skip link.
    await page.keyboard.press('Tab')
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { getAttribute(n: string): string | null } | null } }).document.activeElement?.getAttribute('data-testid'))).toBe('skip-link')
    await page.goto(`${base()}/__onepipe/dashboard/cron/nope`)
    expect(await page.getByTestId('cron-unknown').textContent()).toContain('No cron job named nope')
  })

  it('a pipeline created by a worker moves from Running to Completed on screen without a reload', async () => {
    const page = adminPage
    await page.goto(`${base()}/__onepipe/dashboard/pipelines`)
    await page.getByTestId('pipeline-filters').waitFor()
    await expectAccessible(page, 'pipelines')
    expect(await page.title()).toBe('Pipelines · OnePipe')
    const id = await createPipeline()
    await page.waitForSelector(row(id, 'Running'))
    await work('e2e.fetch', 'completed')
    await work('e2e.store', 'completed')
    await page.waitForSelector(row(id, 'Completed'))
    await expectNoSidewaysScroll(page, 'pipelines')
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
    expect(await page.title()).toBe(`Pipeline ${id.slice(0, 8)}… · OnePipe`)
    await expectNoSidewaysScroll(page, 'pipeline detail, a failed stage and its actions')
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
    await expectNoSidewaysScroll(page, 'API keys')
    // Disabling asks first, with the focus on the answer that acts; Escape keeps the key.
    const temporary = page.locator('[data-testid="key-row"][data-name="temporary"]')
    await temporary.getByTestId('key-disable').click()
    const confirm = temporary.getByTestId('key-disable-confirm')
    await confirm.waitFor()
    expect(await confirm.evaluate((el) => el === (globalThis as unknown as { document: { activeElement: unknown } }).document.activeElement)).toBe(true)
    await expectAccessible(page, 'API keys, disabling asks first')
    await shot(page, 'key-disable-confirm')
    await page.keyboard.press('Escape')
    await temporary.getByTestId('key-disable').waitFor()
    expect(await temporary.getByTestId('key-disable-confirm').count()).toBe(0)
    expect(await temporary.getAttribute('data-disabled')).toBe('false')
    await temporary.getByTestId('key-disable').click()
    await temporary.getByTestId('key-disable-confirm').click()
    await page.waitForSelector('[data-testid="key-row"][data-name="temporary"][data-disabled="true"]')
    await waitFor(async () => (await fetch(`${cp.url}/jobs/pull`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ handlers: ['e2e.fetch'], waitMs: 0 }) })).status === 401, { timeoutMs: 30_000, what: 'the disabled key to be refused' })
    await shot(page, 'key-disabled')

    // Rotation with an overlap: the old key keeps working beside the new one.
    const old = (await auth.apiKeys.create(appId, { name: 'rotating' })).key
    await page.reload()
    const rotating = page.locator('[data-testid="key-row"][data-name="rotating"]')
    await rotating.getByTestId('key-rotate').click()
    await rotating.getByTestId('key-rotate-overlap').selectOption('1h')
    await rotating.getByTestId('key-rotate-confirm').click()
    const fresh = (await page.getByTestId('key-secret').inputValue()).trim()
    expect(fresh).not.toBe(old)
    const pull = (key: string) => fetch(`${cp.url}/jobs/pull`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ handlers: ['e2e.nothing'], waitMs: 0 }) })
    // 204: accepted, with no job to hand out; a refused key gets 401.
    expect((await pull(fresh)).status).toBe(204)
    expect((await pull(old)).status).toBe(204)
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
      await page.goto(`${base()}/__onepipe/dashboard/signals?name=e2e-flag`)
      await page.getByTestId('signal-value').waitFor()
      expect(await page.getByTestId('signal-set-form').count()).toBe(0)
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
    await expectNoSidewaysScroll(page, 'cron')
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

  it('an operator sets a signal from the UI: a value its schema refuses shows the API error, an accepted one replaces the shown value', async () => {
    const page = adminPage
    await page.goto(`${base()}/__onepipe/dashboard/signals?name=e2e-flag`)
    const value = page.getByTestId('signal-set-value')
    await page.getByTestId('signal-set-form').waitFor()
    expect(await value.inputValue()).toBe('false')
    await expectAccessible(page, 'signals')
    expect(await page.title()).toBe('Signals · OnePipe')
    await value.fill('tru')
    await page.getByTestId('signal-set-submit').click()
    await page.getByTestId('signal-set-value-error').waitFor()
    await value.fill('"yes"')
    await page.getByTestId('signal-set-submit').click()
    await page.getByTestId('signal-set-error').waitFor()
    expect(await page.getByTestId('signal-set-value-error').count()).toBe(0)
    expect((await flag.read()).value).toBe(false)
    await shot(page, 'signal-set-refused')
    await value.fill('true')
    await page.getByTestId('signal-set-submit').click()
    await page.getByTestId('signal-set-done').waitFor()
    expect(await page.getByTestId('signal-set-error').count()).toBe(0)
    await page.locator('[data-testid="signal-value"]', { hasText: 'true' }).waitFor()
    expect((await flag.read()).value).toBe(true)
    await shot(page, 'signal-set')
  })

  it('an app that does not answer shows one banner, not an error beside an empty table, and the page fills in once it answers', async () => {
    const ctx = await newContext(browser)
    try {
      const page = await page$(ctx)
      await login(page, base(), 'admin@e2e.test', PASSWORD)
      // The API refuses connections; the console's own files still load.
      const api = (url: URL) => url.pathname.startsWith('/__onepipe/') && !url.pathname.startsWith('/__onepipe/dashboard/')
      await page.route(api, (r) => r.abort('connectionrefused'))
      await page.getByTestId('nav-workers').click()
      const banner = page.getByTestId('unreachable')
      await banner.waitFor()
      expect(await banner.textContent()).toMatch(/^Cannot reach the app: .+, retrying/)
      expect(await page.getByTestId('api-error').count()).toBe(0)
      expect(await page.getByText('No workers.').count()).toBe(0)
      await expectAccessible(page, 'the app unreachable')
      await shot(page, 'unreachable')
      await page.unroute(api)
      await banner.waitFor({ state: 'detached' })
      await page.getByTestId('workers-table').or(page.getByText('No workers.')).waitFor()
      await expectNoSidewaysScroll(page, 'workers')
    } finally {
      await ctx.close()
    }
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
    await expectNoSidewaysScroll(page, 'users')
    // Spaces are no email: said beside the field, the field described by it, nothing sent.
    await page.getByTestId('user-create-email').fill('   ')
    await page.getByTestId('user-create-submit').click()
    const blank = page.getByTestId('user-create-email-error')
    expect(await blank.textContent()).toBe('Enter an email address')
    expect(await page.getByTestId('user-create-email').getAttribute('aria-describedby')).toBe(await blank.getAttribute('id'))
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
    await page.locator('[data-testid="user-row"][data-email="admin@e2e.test"]').getByTestId('user-disable-confirm').click()
    await page.locator('[data-testid="api-error"]', { hasText: 'own account' }).waitFor()
    expect(await page.locator('[data-testid="user-row"][data-email="admin@e2e.test"]').getAttribute('data-disabled')).toBe('false')

    await row.getByTestId('user-disable').click()
    await row.getByTestId('user-disable-confirm').click()
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
