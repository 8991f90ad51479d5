import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Database } from '@onepipe/sdk'
import { collectText, postgresUrl, requireService, spawnNode, uniqueName, waitFor, type NodeProcess } from '@onepipe/testing'
import { localFixtures } from '../src/ai/local.js'
import { MAX_BLUEPRINT_BYTES, WORKERS_APPLICATION } from '../src/contracts.js'

// The app and its worker run as users run them: `node dist/main.js` and
// `node dist/worker.js`, two processes on one PostgreSQL schema of their own.
const dir = fileURLToPath(new URL('..', import.meta.url))
const ADMIN = { email: 'admin@pipelineos.test', password: 'a long test passphrase' }
const ESTIMATOR = { email: 'estimator@pipelineos.test', password: 'estimates all day long' }
const VIEWER = { email: 'viewer@pipelineos.test', password: 'only looking, thank you' }

const png = (tail: string) => Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from(tail)])

/** Ends a process: SIGTERM, then SIGKILL if it is still there after `ms`. */
async function stop(p: NodeProcess | undefined, ms = 20_000): Promise<number | string | undefined> {
  if (!p) return undefined
  p.kill('SIGTERM')
  let t: NodeJS.Timeout | undefined
  const code = await Promise.race([p.exited, new Promise<'timeout'>((r) => (t = setTimeout(() => r('timeout'), ms)))])
  clearTimeout(t)
  if (code !== 'timeout') return code
  p.kill('SIGKILL')
  return p.exited
}

type Role = 'admin' | 'estimator' | 'viewer'
interface ApiError {
  error: { code: string; message: string; requestId: string }
}
interface FixtureView {
  kind: string
  quantity: number
  room: string | null
  confidencePct: number
}
interface BlueprintView {
  id: string
  status: string
  mime: string
  filename: string
  sizeBytes: number
  provider: string | null
  error: { code: string; message: string } | null
  fixtures: FixtureView[]
}
interface BidView {
  id: string
  status: string
  totalCents: number | null
  quote: { totalCents: number; lines: { kind: string }[] } | null
  run: { status: string; error: unknown } | null
  responses: { channel: string; recipient: string; transport: string; messageId: string }[]
}

describe('PipelineOS: the app and its worker as real processes on PostgreSQL', () => {
  const schema = uniqueName('pipelineos')
  let app: NodeProcess | undefined
  let worker: NodeProcess | undefined
  let base = ''
  let db: Database
  const tokens: Record<Role, string> = { admin: '', estimator: '', viewer: '' }

  const call = async (path: string, init: RequestInit & { as?: Role } = {}) => {
    const headers = new Headers(init.headers)
    if (init.as) headers.set('authorization', `Bearer ${tokens[init.as]}`)
    return fetch(`${base}${path}`, { ...init, headers })
  }
  const json = async <T>(path: string, init: RequestInit & { as?: Role; status?: number } = {}): Promise<T> => {
    const res = await call(path, init)
    const body = (await res.json()) as T
    if (res.status !== (init.status ?? 200)) throw new Error(`${init.method ?? 'GET'} ${path}: ${res.status} ${JSON.stringify(body)}`)
    return body
  }
  const post = <T>(path: string, body: unknown, as: Role | undefined, status = 201) =>
    json<T>(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...(as ? { as } : {}), status })
  const upload = (bytes: Buffer, name: string, as?: Role) => {
    const form = new FormData()
    form.set('file', new Blob([new Uint8Array(bytes)]), name)
    return call('/api/blueprints', { method: 'POST', body: form, ...(as ? { as } : {}) })
  }
  const login = async (who: { email: string; password: string }) => (await post<{ accessToken: string }>('/__onepipe/auth/login', who, undefined, 200)).accessToken
  const analysed = (id: string) =>
    waitFor(
      async () => {
        const b = await json<BlueprintView>(`/api/blueprints/${id}`, { as: 'viewer' })
        return (b.status === 'analyzed' || b.status === 'failed') && b
      },
      { timeoutMs: 30_000, intervalMs: 100, what: `blueprint ${id} to be analysed` },
    )

  beforeAll(async () => {
    await requireService('postgres')
    db = Database.create('pipelineos-test').postgres(postgresUrl()).schema(schema).autoMigrate(false).build()
    app = spawnNode(
      'dist/main.js',
      [],
      {
        DATABASE_URL: postgresUrl(),
        ONEPIPE_DB_SCHEMA: schema,
        PORT: '0',
        HOST: '127.0.0.1',
        ONEPIPE_WORKERS_PORT: '0',
        ONEPIPE_AUTH_SECRET: randomBytes(48).toString('base64'),
        ONEPIPE_ADMIN_EMAIL: ADMIN.email,
        ONEPIPE_ADMIN_PASSWORD: ADMIN.password,
        PIPELINEOS_RATE_LIMIT: '1000',
        LOG_LEVEL: 'info',
        REDIS_URL: undefined,
        ONEPIPE_DATA_DIR: undefined,
        SMTP_URL: undefined,
        ANTHROPIC_API_KEY: undefined,
        NODE_ENV: undefined,
      },
      { cwd: dir },
    )
    const listening = await app.waitFor(/"url":"(http:\/\/[^"]+)","components"[^\n]*"OnePipe app listening"/, 60_000)
    base = (/http:\/\/[^"]+/.exec(listening)?.[0] ?? '').replace('//localhost:', '//127.0.0.1:')
    const workersUrl = /http:\/\/[^"]+/.exec(await app.waitFor(/"url":"http:\/\/[^"]+","msg":"pipelines: worker API listening"/))?.[0] ?? ''
    // The banner comes once the workers' application exists.
    await app.waitFor(/PipelineOS is running on PostgreSQL/)

    tokens.admin = await login(ADMIN)
    await post('/__onepipe/auth/users', { ...ESTIMATOR, roles: ['estimator'] }, 'admin')
    await post('/__onepipe/auth/users', { ...VIEWER, roles: ['viewer'] }, 'admin')
    tokens.estimator = await login(ESTIMATOR)
    tokens.viewer = await login(VIEWER)
    // The worker's key, made by an admin as an operator would (docs/auth.md).
    const { applications: apps } = await json<{ applications: { id: string; name: string }[] }>('/__onepipe/auth/applications', { as: 'admin' })
    const workersApp = apps.find((a) => a.name === WORKERS_APPLICATION)
    expect(workersApp).toBeDefined()
    const { key } = await post<{ key: string }>(`/__onepipe/auth/applications/${workersApp?.id}/keys`, { name: 'test' }, 'admin')
    worker = spawnNode('dist/worker.js', [], { ONEPIPE_API_KEY: key, ONEPIPE_WORKERS_URL: workersUrl, PIPELINEOS_URL: base, ONEPIPE_DATA_DIR: undefined, ANTHROPIC_API_KEY: undefined }, { cwd: dir })
    await worker.waitFor(/pulls blueprint\.analyze \(provider local/, 30_000)
  })

  afterAll(async () => {
    const w = await stop(worker)
    const a = await stop(app)
    await db?.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await db?.close()
    // Both stop cleanly on SIGTERM: the worker hands back what it holds, the app drains and runs its hooks.
    if (worker) expect(w, worker.output().slice(-2000)).toBe(0)
    if (app) expect(a, app.output().slice(-2000)).toBe(0)
  })

  it('an upload is analysed by the worker, followed live; a bid prices it, renders the PDF and records the e-mail, once', async () => {
    const bytes = png(`blueprint of level 1, ${randomBytes(8).toString('hex')}`)
    const res = await upload(bytes, 'level-1.png', 'estimator')
    expect(res.status).toBe(201)
    const created = (await res.json()) as BlueprintView
    expect(created).toMatchObject({ status: 'pending', mime: 'image/png', filename: 'level-1.png', sizeBytes: bytes.byteLength, fixtures: [] })
    expect(res.headers.get('location')).toBe(`/api/blueprints/${created.id}`)

    // Live, no polling: the blueprint's own event stream announces each status.
    const live = collectText(await call(`/api/blueprints/${created.id}/events`, { as: 'estimator' }))
    try {
      await waitFor(() => live.text().includes('"status":"analyzed"'), { timeoutMs: 30_000, what: 'the analyzed event on the live stream' })
      const statuses = [...live.text().matchAll(/"status":"(\w+)"/g)].map((m) => m[1])
      expect(statuses).toEqual(['pending', 'analyzing', 'analyzed'])
    } finally {
      await live.stop()
    }
    const done = await json<BlueprintView>(`/api/blueprints/${created.id}`, { as: 'viewer' })
    expect(done).toMatchObject({ status: 'analyzed', provider: 'local', error: null })
    expect(done.fixtures).toEqual(localFixtures(bytes))

    const lead = await post<{ id: string }>('/api/leads', { name: 'Ada Builder', email: 'ada@example.com', company: 'Acme Homes' }, 'estimator')
    const bid = await post<BidView>(`/api/blueprints/${created.id}/bids`, { leadId: lead.id }, 'estimator')
    // Asking again answers the same bid (200), and starts nothing new.
    const again = await post<BidView>(`/api/blueprints/${created.id}/bids`, { leadId: lead.id }, 'estimator', 200)
    expect(again.id).toBe(bid.id)
    const sent = await waitFor(
      async () => {
        const b = await json<BidView>(`/api/bids/${bid.id}`, { as: 'viewer' })
        if (b.run?.status === 'failed') throw new Error(`the bid run failed: ${JSON.stringify(b.run.error)}`)
        return b.status === 'sent' && b
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'the bid to be sent' },
    )
    expect(sent.run).toEqual({ status: 'completed', error: null })
    expect(sent.quote?.lines.map((l) => l.kind).sort()).toEqual(done.fixtures.map((f) => f.kind).sort())
    expect(sent.totalCents).toBe(sent.quote?.totalCents)
    expect(sent.responses).toEqual([expect.objectContaining({ channel: 'email', recipient: 'ada@example.com', transport: 'recorded', messageId: `<bid-${bid.id}@pipelineos>` })])

    const pdf = await call(`/api/bids/${bid.id}/pdf`, { as: 'viewer' })
    expect(pdf.status).toBe(200)
    expect(pdf.headers.get('content-type')).toBe('application/pdf')
    expect(Buffer.from(await pdf.arrayBuffer()).subarray(0, 5).toString('latin1')).toBe('%PDF-')

    // The e-mail was recorded whole (no SMTP_URL), the proposal attached, once.
    const rows = await db.query<{ raw_message: string }>('SELECT raw_message FROM responses WHERE bid_id = $1', [bid.id])
    expect(rows).toHaveLength(1)
    expect(rows[0]?.raw_message).toContain('To: ada@example.com')
    expect(rows[0]?.raw_message).toContain(`filename=proposal-${bid.id}.pdf`)
  })

  it('a file the provider cannot read ends the blueprint failed, with the error recorded', async () => {
    const res = await upload(png(''), 'blank.png', 'estimator')
    expect(res.status).toBe(201)
    const b = await analysed(((await res.json()) as BlueprintView).id)
    expect(b).toMatchObject({ status: 'failed', error: { code: 'BLUEPRINT_UNREADABLE' }, fixtures: [] })
    // A bid needs fixtures.
    const lead = await post<{ id: string }>('/api/leads', { name: 'Bo', email: 'bo@example.com' }, 'estimator')
    expect(await post<ApiError>(`/api/blueprints/${b.id}/bids`, { leadId: lead.id }, 'estimator', 409)).toMatchObject({ error: { code: 'BLUEPRINT_NOT_ANALYZED' } })
  })

  it('refuses bad input and callers without the right, with a typed JSON error, storing nothing', async () => {
    const count = async () => (await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM blueprints'))[0]?.n
    const before = await count()
    const expectError = async (res: Response, status: number, code: string) => {
      expect(res.status).toBe(status)
      expect(res.headers.get('content-type')).toMatch(/application\/json/)
      expect(((await res.json()) as ApiError).error).toMatchObject({ code, requestId: expect.any(String) })
    }
    await expectError(await upload(png('anonymous plan'), 'a.png'), 401, 'UNAUTHORIZED')
    await expectError(await upload(Buffer.from('GIF89a, not a blueprint'), 'plan.pdf', 'estimator'), 400, 'UNSUPPORTED_FILE_TYPE')
    await expectError(await upload(png('a viewer may only read'), 'v.png', 'viewer'), 403, 'FORBIDDEN')
    await expectError(await call('/api/blueprints', { method: 'POST', as: 'estimator', body: new FormData() }), 400, 'VALIDATION_FAILED')
    await expectError(await call('/api/blueprints/7f1e8a2c-0000-4000-8000-000000000000', { as: 'viewer' }), 404, 'BLUEPRINT_NOT_FOUND')
    await expectError(await call('/api/blueprints/not-an-id', { as: 'viewer' }), 400, 'VALIDATION_FAILED')
    await expectError(await call('/api/leads', { method: 'POST', as: 'viewer', headers: { 'content-type': 'application/json' }, body: '{"name":"x","email":"x@example.com"}' }), 403, 'FORBIDDEN')
    await expectError(await call('/api/leads', { method: 'POST', as: 'estimator', headers: { 'content-type': 'application/json' }, body: '{"name":"x","email":"not an address"}' }), 400, 'VALIDATION_FAILED')

    // Over 50 MB: refused from the declared length, before a byte of the body is read.
    const tooLarge = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${base}/api/blueprints`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.estimator}`, 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(MAX_BLUEPRINT_BYTES + 1) },
      })
      req.on('response', (r) => {
        let body = ''
        r.on('data', (c: Buffer) => (body += c.toString()))
        r.on('end', () => {
          resolve({ status: r.statusCode ?? 0, body })
          req.destroy()
        })
      })
      req.on('error', reject)
      req.flushHeaders()
    })
    expect(tooLarge.status).toBe(413)
    expect(JSON.parse(tooLarge.body)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } })

    // Only the workers' application reports analyses: not a person, not another application's key.
    const { application: other } = await post<{ application: { id: string } }>('/__onepipe/auth/applications', { name: 'someone-else' }, 'admin')
    const { key } = await post<{ key: string }>(`/__onepipe/auth/applications/${other.id}/keys`, { name: 'other' }, 'admin')
    const report = { status: 'analyzing', pipelineId: '7f1e8a2c-0000-4000-8000-000000000000', attempt: 1 }
    const bp = '7f1e8a2c-0000-4000-8000-000000000001'
    await expectError(await call(`/api/blueprints/${bp}/analysis`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify(report) }), 403, 'FORBIDDEN')
    await expectError(await call(`/api/blueprints/${bp}/analysis`, { method: 'POST', as: 'admin', headers: { 'content-type': 'application/json' }, body: JSON.stringify(report) }), 403, 'FORBIDDEN')
    await expectError(await call(`/api/blueprints/${bp}/file`, { headers: { 'x-api-key': key } }), 403, 'FORBIDDEN')
    expect(await count()).toBe(before)
  })
})
