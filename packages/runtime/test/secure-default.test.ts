import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { spawnNode, type NodeProcess } from '@onepipe/testing'

const fixture = fileURLToPath(new URL('./fixtures/secure-app.mjs', import.meta.url))
const SECRET = 'a-test-secret-of-more-than-thirty-two-bytes-0123456789'
const ADMIN = { email: 'root@example.test', password: 'correct horse battery staple' }

// An app deployed as the README shows it: nothing about auth in its code.
describe('secure by default', () => {
  const dirs: string[] = []
  const procs: NodeProcess[] = []
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })
  const env = (extra: Record<string, string | undefined>) => {
    const dir = mkdtempSync(join(tmpdir(), 'onepipe-secure-'))
    dirs.push(dir)
    return { NODE_ENV: 'production', DATABASE_URL: undefined, REDIS_URL: undefined, ONEPIPE_AUTH_SECRET: undefined, ONEPIPE_AUTH_PRIVATE_KEY: undefined, ONEPIPE_DATA_DIR: dir, LOG_LEVEL: 'warn', ...extra }
  }

  it('under NODE_ENV=production without a secret, the app does not start and names the variable to set', async () => {
    const p = spawnNode(fixture, [], env({}))
    procs.push(p)
    expect(await p.exited).toBe(1)
    expect(p.output()).toContain('AUTH_SECRET_MISSING')
    expect(p.output()).toContain('ONEPIPE_AUTH_SECRET')
  })

  it('with a secret: 401 without credentials, 403 for a viewer acting, 200 for an operator', { timeout: 120_000 }, async () => {
    const p = spawnNode(fixture, [], env({ ONEPIPE_AUTH_SECRET: SECRET, ONEPIPE_ADMIN_EMAIL: ADMIN.email, ONEPIPE_ADMIN_PASSWORD: ADMIN.password }))
    procs.push(p)
    const port = Number((await p.waitFor(/listening \d+/, 60_000)).split(' ')[1])
    const url = `http://127.0.0.1:${port}`
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

    const anon = await post('/__onepipe/workflows/hello/start', { input: { name: 'x' } })
    expect(anon.status).toBe(401)
    expect(await anon.json()).toMatchObject({ error: { code: 'UNAUTHORIZED', requestId: expect.any(String) as string } })
    expect((await fetch(`${url}/__onepipe/workflows/hello/runs`)).status).toBe(401)

    const login = async (who: { email: string; password: string }) => {
      const r = await post('/__onepipe/auth/login', who)
      expect(r.status).toBe(200)
      return { authorization: `Bearer ${((await r.json()) as { accessToken: string }).accessToken}` }
    }
    const admin = await login(ADMIN)
    for (const [email, role] of [['op@example.test', 'operator'], ['view@example.test', 'viewer']] as const) {
      expect((await post('/__onepipe/auth/users', { email, password: 'another long passphrase', roles: [role] }, admin)).status).toBe(201)
    }
    const viewer = await login({ email: 'view@example.test', password: 'another long passphrase' })
    const operator = await login({ email: 'op@example.test', password: 'another long passphrase' })

    expect((await fetch(`${url}/__onepipe/workflows/hello/runs`, { headers: viewer })).status).toBe(200)
    const denied = await post('/__onepipe/workflows/hello/start', { input: { name: 'v' } }, viewer)
    expect(denied.status).toBe(403)
    expect(await denied.json()).toMatchObject({ error: { code: 'FORBIDDEN' } })
    const started = await post('/__onepipe/workflows/hello/start', { input: { name: 'op' }, workflowId: 'by-operator' }, operator)
    expect(started.status).toBe(201)
    const runs = (await (await fetch(`${url}/__onepipe/workflows/hello/runs`, { headers: viewer })).json()) as { runs: { workflowId: string }[] }
    expect(runs.runs.map((r) => r.workflowId)).toEqual(['by-operator'])
    // The probes stay public.
    expect((await fetch(`${url}/health`)).status).toBe(200)
  })
})

// A client that puts a credential in the query string must not have it written to the access log.
describe('access log', () => {
  it('redacts credentials in the query string and keeps the rest of the URL', async () => {
    const { Hono } = await import('hono')
    const { instrument } = await import('../src/http/app.js')
    const lines: Record<string, unknown>[] = []
    const capture = (o: object | string) => void lines.push(typeof o === 'string' ? { msg: o } : (o as Record<string, unknown>))
    const logger = { debug: capture, info: capture, warn: capture, error: capture, child: () => logger }
    const hono = new Hono()
    hono.get('/api/x', (c) => c.json({ ok: true }))
    const metrics = { http: { observe: () => undefined } }
    const fetchApp = instrument(hono, { state: { inFlight: 0, draining: false, idle: new Set() }, metrics: metrics as never, logger, accessLog: true })
    await fetchApp(new Request('http://app.test/api/x?access_token=eyJSECRET1&api_key=op_abcdefgh_SECRET2&password=SECRET3&page=2'))
    await fetchApp(new Request('http://app.test/api/x?page=3'))
    const urls = lines.map((l) => String(l.url))
    expect(urls.join(' ')).not.toMatch(/SECRET/)
    expect(urls[0]).toContain('page=2')
    expect(urls[0]).toContain('access_token=%5Bredacted%5D')
    expect(urls[1]).toBe('http://app.test/api/x?page=3')
  })
})
