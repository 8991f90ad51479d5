import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Database } from '@onepipe/core'
import { postgresUrl, requireService, uniqueName } from '@onepipe/testing'
import { deployCli, entries, filesUnder, leaks } from './fixtures/deploy-run.js'

const AUTH_SECRET = 'Standalone-Leak-3c5e7a9b1d3f5e7c9a0f9d2c7e4b1a6d8f'
// The machine running CI is loaded: starting a 4 MB bundle and migrating a schema can take a while.
const DEADLINE_MS = 90_000

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))))
    })
  })
}

async function waitReady(url: string, child: ChildProcess, log: () => string): Promise<Response> {
  const until = Date.now() + DEADLINE_MS
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the bundle exited with ${child.exitCode}:\n${log()}`)
    const r = await fetch(url).catch(() => undefined)
    if (r?.status === 200) return r
    if (Date.now() > until) throw new Error(`no 200 from ${url} within ${DEADLINE_MS} ms (last ${r?.status ?? 'no answer'}):\n${log()}`)
    await new Promise((res) => setTimeout(res, 500))
  }
}

describe('onepipe deploy --target standalone: the shop as one bundled file on PostgreSQL', () => {
  const schema = uniqueName('deploy_standalone')
  const url = postgresUrl()
  let out = ''
  let look: Database | undefined
  let child: ChildProcess | undefined

  beforeAll(async () => {
    // Fails, never skips, without PostgreSQL.
    await requireService('postgres')
    look = Database.create('look').postgres(url).autoMigrate(false).build()
    out = await mkdtemp(join(tmpdir(), 'onepipe-standalone-'))
  })
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL')
    await look?.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await look?.close()
    await rm(out, { recursive: true, force: true })
  })

  it('bundles the shop; start.sh serves /ready and the orders API from a real process; nothing secret is written', async () => {
    const r = await deployCli(['production', '--target', 'standalone', '--out', out, entries.shop], { DATABASE_URL: url, ONEPIPE_AUTH_SECRET: AUTH_SECRET })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const files = filesUnder(out)
    for (const f of ['app.mjs', 'start.sh', '.env.example', 'assets/@onepipe/core/sql/000001_foundation.sql', 'assets/@onepipe/example-shop/sql']) expect(files.some((x) => x === f || x.startsWith(`${f}/`)), f).toBe(true)
    expect(leaks(out, [AUTH_SECRET])).toEqual([])

    const port = await freePort()
    let log = ''
    child = spawn('sh', [join(out, 'start.sh')], {
      // Run from elsewhere: the bundle must find its files beside itself, not in the checkout.
      cwd: tmpdir(),
      env: { PATH: process.env.PATH, DATABASE_URL: url, ONEPIPE_DB_SCHEMA: schema, ONEPIPE_AUTH_SECRET: AUTH_SECRET, PORT: String(port), ONEPIPE_DATA_DIR: join(out, 'data') },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()))
    const base = `http://127.0.0.1:${port}`
    const ready = await waitReady(`${base}/ready`, child, () => log)
    expect(((await ready.json()) as { status: string }).status).toBe('ok')

    const placed = await fetch(`${base}/api/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ customer: 'ada', items: [{ sku: 'tea', qty: 2, priceCents: 450 }] }) })
    expect(placed.status).toBe(201)
    const list = await fetch(`${base}/api/orders`)
    expect(list.status).toBe(200)
    const body = (await list.json()) as { orders: { customer: string; total_cents: number }[] }
    expect(body.orders.map((o) => [o.customer, Number(o.total_cents)])).toEqual([['ada', 900]])
    // The tables are in the fresh schema, made by the bundle's own migrations (OnePipe's SQL and the shop's, copied as assets).
    expect(await look!.query<{ n: string }>('SELECT count(*)::text AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2', [schema, 'orders'])).toEqual([{ n: '1' }])

    const exited = new Promise<number | null>((res) => child?.once('exit', (code) => res(code)))
    child.kill('SIGTERM')
    expect(await exited).not.toBe(null)
  })

  it('start.sh refuses to start without DATABASE_URL, saying so', async () => {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawn('sh', [join(out, 'start.sh')], { env: { PATH: process.env.PATH, ONEPIPE_AUTH_SECRET: AUTH_SECRET }, stdio: ['ignore', 'ignore', 'pipe'] })
      let stderr = ''
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      p.once('close', (code) => resolve({ code, stderr }))
    })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain('DATABASE_URL is required in production')
  })
})
