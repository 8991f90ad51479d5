// bench/dashboard: the figures the dashboard is held to, in one run on
// PostgreSQL, with a floor beside each: 10,000 pipelines of 5 stages in the
// database (rows written with one INSERT … generate_series each).
//   List API: GET /__onepipe/pipelines (first page, a status filter, a keyword,
//   a page 50 deep by cursor) through serve() with a bearer token, p50/p95 of
//   200 sequential requests each, beside the same page's SQL run directly with
//   the `postgres` client (the floor: what the API adds is auth, JSON and HTTP).
//   First rows: headless chromium opens the pipelines page with a logged-in
//   session; time from navigation to the first row drawn, 10 loads (cold: a new
//   context each, so no cache of assets or data).
//   Live: 100 SSE clients on /__onepipe/live; 50 stage changes made through the
//   worker API (pull + ack), one at a time; per client, time from the ack being
//   sent to the change arriving; p50/p99 over all clients and changes, beside
//   one client on the flow-free floor (LISTEN on the same NOTIFY channel with
//   the `postgres` client).
//   Size: the dashboard's JavaScript, gzipped.
//
// Usage: node bench/run.mjs dashboard [--pipelines N] [--clients N] [--changes N]
//   ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres)
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import postgres from 'postgres'
import { chromium } from 'playwright-core'
import { printTable, startServer } from '../lib/report.mjs'

const args = process.argv.slice(2)
const opt = (f, d) => (args.includes(f) ? Number(args[args.indexOf(f) + 1]) : d)
const PIPELINES = opt('--pipelines', 10_000)
const CLIENTS = opt('--clients', 100)
const CHANGES = opt('--changes', 50)
const ADMIN_URL = process.env.ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const schema = `bench_dash_${randomBytes(4).toString('hex')}`
const here = (f) => fileURLToPath(new URL(f, import.meta.url))
const pct = (a, p) => {
  const s = [...a].sort((x, y) => x - y)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN
}

const sql = postgres(ADMIN_URL, { max: 4, onnotice: () => {} })
const server = await startServer(here('./server.mjs'), { DATABASE_URL: ADMIN_URL, BENCH_SCHEMA: schema })
const val = (k) => new RegExp(`${k}=(\\S+)`).exec(server.output)?.[1]
const base = `http://127.0.0.1:${server.port}`
const token = val('TOKEN')
const key = val('KEY')
const appId = val('APP')
const workers = val('WORKERS')
const email = val('EMAIL')
const auth = { authorization: `Bearer ${token}` }
const rows = []
let browser
try {
  // --- Seed: PIPELINES pipelines of 5 stages, a quarter still running.
  const t0 = Date.now()
  await sql.begin(async (tx) => {
    await tx.unsafe(`SET LOCAL search_path TO "${schema}"`)
    await tx.unsafe(
      `INSERT INTO _onepipe_pipelines (id, app_id, name, template, status, keywords, input, created_at, updated_at, finished_at)
       SELECT gen_random_uuid(), $1, 'bench-five', 'bench-five', CASE WHEN i % 4 = 0 THEN 'Running' WHEN i % 10 = 1 THEN 'Failed' ELSE 'Completed' END,
              ARRAY['batch-' || (i % 100)], jsonb_build_object('i', i), now() - (i || ' seconds')::interval, now(), CASE WHEN i % 4 = 0 THEN NULL ELSE now() END
       FROM generate_series(1, $2::int) AS i`,
      [appId, PIPELINES],
    )
    await tx.unsafe(
      `INSERT INTO _onepipe_pipeline_stages (id, pipeline_id, app_id, position, name, handler, depends_on, waiting_on, max_retries, retry_interval_ms, max_retry_interval_ms, backoff, status)
       SELECT gen_random_uuid(), p.id, p.app_id, s.pos, s.name, 'seeded.' || s.name, CASE WHEN s.pos = 0 THEN '{}' ELSE ARRAY[s.prev] END, CASE WHEN s.pos = 0 THEN 0 ELSE 1 END, 3, 1000, 60000, 'exponential',
              CASE WHEN p.status = 'Completed' THEN 'Completed' WHEN p.status = 'Failed' AND s.pos < 2 THEN 'Completed' WHEN p.status = 'Failed' AND s.pos = 2 THEN 'Failed' WHEN p.status = 'Failed' THEN 'Skipped'
                   WHEN s.pos < 2 THEN 'Completed' WHEN s.pos = 2 THEN 'Running' ELSE 'NotStarted' END
       FROM _onepipe_pipelines p, (VALUES (0, 'fetch', NULL), (1, 'parse', 'fetch'), (2, 'enrich', 'parse'), (3, 'score', 'enrich'), (4, 'store', 'score')) AS s(pos, name, prev)`,
    )
    await tx.unsafe('ANALYZE _onepipe_pipelines; ANALYZE _onepipe_pipeline_stages')
  })
  console.log(`seeded ${PIPELINES} pipelines × 5 stages in ${Date.now() - t0} ms`)

  // --- List API beside its SQL.
  const firstPage = await (await fetch(`${base}/__onepipe/pipelines?limit=50`, { headers: auth })).json()
  let cursor = firstPage.nextCursor
  for (let i = 0; i < 49 && cursor; i++) cursor = (await (await fetch(`${base}/__onepipe/pipelines?limit=50&cursor=${cursor}`, { headers: auth })).json()).nextCursor
  const cases = [
    { name: 'first page', q: 'limit=50' },
    { name: 'status=Running', q: 'limit=50&status=Running' },
    { name: 'keyword q=batch-7', q: 'limit=50&q=batch-7' },
    { name: 'page 51 by cursor', q: `limit=50&cursor=${cursor}` },
  ]
  const floorSql = (c) => {
    const u = new URLSearchParams(c.q)
    const after = u.get('cursor') ? JSON.parse(Buffer.from(u.get('cursor'), 'base64url').toString()) : [null, null]
    return sql.begin(async (tx) => {
      await tx.unsafe(`SET LOCAL search_path TO "${schema}"`)
      return tx.unsafe(
        `SELECT p.id, p.app_id, p.name, p.template, p.status, p.keywords, p.created_at, p.updated_at, p.finished_at,
                (SELECT jsonb_object_agg(c.status, c.n) FROM (SELECT s.status, count(*) AS n FROM _onepipe_pipeline_stages s WHERE s.pipeline_id = p.id GROUP BY s.status) c) AS stage_counts
         FROM _onepipe_pipelines p WHERE ($1::text IS NULL OR p.status = $1)
           AND ($2::text IS NULL OR lower(p.name) LIKE $2 || '%' OR EXISTS (SELECT 1 FROM unnest(p.keywords) k WHERE lower(k) LIKE $2 || '%'))
           AND ($3::timestamptz IS NULL OR (p.created_at, p.id) < ($3::timestamptz, $4::uuid))
         ORDER BY p.created_at DESC, p.id DESC LIMIT 51`,
        [u.get('status'), u.get('q'), after[0], after[1]],
      )
    })
  }
  for (const c of cases) {
    const api = []
    const floor = []
    for (let i = 0; i < 220; i++) {
      let s = performance.now()
      const res = await fetch(`${base}/__onepipe/pipelines?${c.q}`, { headers: auth })
      if (res.status !== 200) throw new Error(`${c.name}: ${res.status} ${await res.text()}`)
      await res.json()
      if (i >= 20) api.push(performance.now() - s)
      s = performance.now()
      await floorSql(c)
      if (i >= 20) floor.push(performance.now() - s)
    }
    rows.push({ name: `list API, ${c.name}: p50 ms`, ours: pct(api, 50), peer: pct(floor, 50), higherIsBetter: false })
    rows.push({ name: `list API, ${c.name}: p95 ms`, ours: pct(api, 95), peer: pct(floor, 95), higherIsBetter: false })
  }

  // --- First rows on screen, cold.
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] })
  const loads = []
  for (let i = 0; i < 10; i++) {
    const ctx = await browser.newContext()
    const page = await ctx.newPage()
    await page.goto(`${base}/__onepipe/dashboard/login`)
    await page.getByTestId('login-email').fill(email)
    await page.getByTestId('login-password').fill('a bench passphrase')
    await page.getByTestId('login-submit').click()
    await page.getByTestId('current-user').waitFor({ timeout: 30_000 })
    const s = Date.now()
    await page.goto(`${base}/__onepipe/dashboard/pipelines`)
    await page.locator('[data-testid="pipeline-row"]').first().waitFor({ timeout: 30_000 })
    loads.push(Date.now() - s)
    await ctx.close()
  }
  rows.push({ name: 'pipelines page: navigation → first row drawn, p50 ms (10 cold loads)', ours: pct(loads, 50), peer: null })
  rows.push({ name: 'pipelines page: navigation → first row drawn, max ms', ours: Math.max(...loads), peer: null })

  // --- 100 live clients, CHANGES stage changes.
  const { pipelineId } = await (await fetch(`${workers}/pipelines`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ template: 'bench-five' }) })).json()
  // The k-th Completed/Failed change of the pipeline a client sees is the k-th ack sent (acks go one at a time).
  const sent = []
  const isAck = (ch) => ch.pipelineId === pipelineId && (ch.stageStatus === 'Completed' || ch.stageStatus === 'Failed')
  const latencies = []
  const floorLat = []
  const clients = []
  for (let i = 0; i < CLIENTS; i++) {
    const ac = new AbortController()
    const res = await fetch(`${base}/__onepipe/live`, { headers: auth, signal: ac.signal })
    const reader = res.body.getReader()
    const dec = new TextDecoder()
    let buf = ''
    let k = 0
    const done = (async () => {
      for (;;) {
        const { value, done: end } = await reader.read().catch(() => ({ done: true }))
        if (end) return
        buf += dec.decode(value, { stream: true })
        let cut
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, cut)
          buf = buf.slice(cut + 2)
          const data = /^data: (.*)$/m.exec(frame)?.[1]
          if (!data) continue
          const ch = JSON.parse(data)
          if (isAck(ch)) latencies.push(performance.now() - sent[k++])
        }
      }
    })()
    clients.push({ ac, done })
  }
  const listen = postgres(ADMIN_URL, { max: 1, onnotice: () => {} })
  await listen.unsafe(`SET search_path TO "${schema}"`)
  let fk = 0
  await listen.listen(`${schema}__onepipe_pipeline_changes`, (p) => {
    const ch = JSON.parse(p)
    if (isAck(ch)) floorLat.push(performance.now() - sent[fk++])
  })
  // The control plane learns it has subscribers and starts publishing.
  await new Promise((r) => setTimeout(r, 1500))
  const headers = { 'x-api-key': key, 'content-type': 'application/json' }
  let made = 0
  for (let round = 0; made < CHANGES; round++) {
    for (const s of ['fetch', 'parse', 'enrich', 'score', 'store']) {
      if (made >= CHANGES) break
      const pulled = await (await fetch(`${workers}/jobs/pull`, { method: 'POST', headers, body: JSON.stringify({ handlers: [`bench.${s}`], waitMs: 10_000 }) })).json()
      const job = pulled.jobs[0]
      if (!job) throw new Error(`no job for ${s}`)
      // The last stage is failed, then rerun, so the run goes on for as many changes as asked.
      const fail = s === 'store'
      sent.push(performance.now())
      await fetch(`${workers}/jobs/ack`, { method: 'POST', headers, body: JSON.stringify(fail ? { executionId: job.executionId, status: 'failed', error: { code: 'BENCH', message: 'again' } } : { executionId: job.executionId, status: 'completed' }) })
      made++
      await new Promise((r) => setTimeout(r, 50))
      if (fail) {
        const view = await (await fetch(`${base}/__onepipe/pipelines/${pipelineId}`, { headers: auth })).json()
        const first = view.stages.find((x) => x.name === 'fetch')
        await fetch(`${base}/__onepipe/pipelines/stages/${first.id}/rerun`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ following: true }) })
        await new Promise((r) => setTimeout(r, 200))
      }
    }
  }
  for (const c of clients) c.ac.abort()
  await Promise.all(clients.map((c) => c.done))
  await listen.end()
  rows.push({ name: `live: ${CLIENTS} SSE clients, ack sent → change received, p50 ms (${latencies.length} deliveries)`, ours: pct(latencies, 50), peer: pct(floorLat, 50), higherIsBetter: false })
  rows.push({ name: `live: ${CLIENTS} SSE clients, ack sent → change received, p99 ms`, ours: pct(latencies, 99), peer: pct(floorLat, 99), higherIsBetter: false })
  rows.push({ name: 'live: deliveries expected (clients × changes seen by the floor)', ours: latencies.length, peer: floorLat.length * CLIENTS })

  // --- Size.
  const dist = join(fileURLToPath(new URL('../../packages/dashboard/dist/assets', import.meta.url)))
  const js = readdirSync(dist).filter((f) => f.endsWith('.js'))
  const gz = js.reduce((n, f) => n + gzipSync(readFileSync(join(dist, f)), { level: 9 }).length, 0)
  rows.push({ name: `dashboard JavaScript, gzipped, KB (${js.length} file(s); budget 300)`, ours: gz / 1024, peer: null })
} finally {
  await browser?.close()
  await server.stop()
  await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await sql.end()
}

printTable(`dashboard (${PIPELINES.toLocaleString('en-US')} pipelines × 5 stages on PostgreSQL)`, 'floor (SQL, LISTEN)', rows)
