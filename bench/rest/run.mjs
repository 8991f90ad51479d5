// bench/rest: OnePipe REST beside bare Hono, same routes, same machine, one
// run. autocannon drives each server from a process of its own; each server
// runs in its own process. Rounds alternate the two servers so drift hits both.
import { fileURLToPath } from 'node:url'
import { autocannon, printTable, startServer } from '../lib/report.mjs'
import { orderBody } from './schema.mjs'

const DURATION = Number(process.env.BENCH_SECONDS ?? 5)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)

const routes = [
  { name: 'GET JSON', path: '/hello', method: 'GET' },
  { name: 'GET with a param', path: '/users/42', method: 'GET' },
  { name: 'POST validated JSON', path: '/orders', method: 'POST', body: orderBody, headers: { 'content-type': 'application/json' } },
]

function run(port, r, duration) {
  return autocannon({ url: `http://127.0.0.1:${port}${r.path}`, method: r.method, body: r.body, headers: r.headers, connections: CONNECTIONS, duration })
}

const here = (f) => fileURLToPath(new URL(f, import.meta.url))
const servers = { onepipe: await startServer(here('./onepipe-server.mjs')), hono: await startServer(here('./hono-server.mjs')) }
const results = { onepipe: {}, hono: {} }
try {
  // Warm every route of both servers first (JIT), checking each answers 2xx.
  for (const r of routes) {
    for (const s of ['onepipe', 'hono']) {
      const check = await run(servers[s].port, r, 2)
      if (check.non2xx > 0 || check['2xx'] === 0) throw new Error(`${s} ${r.name}: ${check.non2xx} non-2xx responses`)
    }
  }
  for (const r of routes) {
    for (let i = 0; i < ROUNDS; i++) {
      for (const s of i % 2 === 0 ? ['onepipe', 'hono'] : ['hono', 'onepipe']) {
        const res = await run(servers[s].port, r, DURATION)
        const acc = (results[s][r.name] ??= { rps: [], p99: [] })
        acc.rps.push(res.requests.average)
        acc.p99.push(res.latency.p99)
      }
    }
  }
} finally {
  await servers.onepipe.stop()
  await servers.hono.stop()
}

const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length
const rows = []
for (const r of routes) {
  rows.push({ name: `${r.name} requests/s`, ours: mean(results.onepipe[r.name].rps), peer: mean(results.hono[r.name].rps), unit: 'req/s' })
  rows.push({ name: `${r.name} p99`, ours: mean(results.onepipe[r.name].p99), peer: mean(results.hono[r.name].p99), unit: 'ms', higherIsBetter: false })
}
const priced = []
printTable(`bench/rest — ${CONNECTIONS} connections, ${ROUNDS}×${DURATION}s per route and server, alternating, autocannon in its own process on core 0, servers on core 1, node ${process.version}`, 'Hono', rows)

// The price of a JWT and of a rate limit: the GET JSON route of the same
// OnePipe server, bare, behind a Bearer token (signature, claims and the
// session's status checked on every request) and behind a rate limit.
const token = /TOKEN=(\S+)/.exec(servers.onepipe.output ?? '')?.[1]
const again = await startServer(here('./onepipe-server.mjs'))
const tok = /TOKEN=(\S+)/.exec(again.output)?.[1] ?? token
const variants = [
  { name: 'GET JSON', path: '/hello', method: 'GET' },
  { name: 'GET JSON with a JWT', path: '/secure/hello', method: 'GET', headers: { authorization: `Bearer ${tok}` } },
  { name: 'GET JSON with a rate limit', path: '/limited/hello', method: 'GET' },
]
const vres = {}
try {
  for (const v of variants) {
    const check = await run(again.port, v, 2)
    if (check.non2xx > 0 || check['2xx'] === 0) throw new Error(`${v.name}: ${check.non2xx} non-2xx responses`)
  }
  for (let i = 0; i < ROUNDS; i++) {
    for (const v of i % 2 === 0 ? variants : [...variants].reverse()) (vres[v.name] ??= []).push((await run(again.port, v, DURATION)).requests.average)
  }
} finally {
  await again.stop()
}
const base = mean(vres['GET JSON'])
for (const v of variants.slice(1)) priced.push({ name: `${v.name} requests/s`, ours: mean(vres[v.name]), peer: base, unit: 'req/s' })
printTable('bench/rest — the same OnePipe route with and without a JWT and a rate limit (target ≥ 0.85)', 'without', priced)
