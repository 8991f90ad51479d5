// bench/auth: what a login costs and where the time goes. A login is one
// argon2id verification with the OWASP parameters (m=19 MiB, t=2, p=1), so
// its latency is the hash's by design; this prints login p50/p99 beside the
// bare hash verification, sequentially and with logins in flight, then the
// cost of a refresh (one transaction) and of authenticating a request that
// carries an access token or an API key (memory in the common case).
// Usage: node bench/run.mjs auth
//   BENCH_DB=pglite|postgres (pglite; postgres uses DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres)
//   LOGINS (200), INFLIGHT (4: libuv's default thread pool, where argon2 runs), UV_THREADPOOL_SIZE
import { randomBytes } from 'node:crypto'
import { availableParallelism, loadavg } from 'node:os'
import { verify } from '@node-rs/argon2'
import { Hono } from 'hono'
import { Auth, Database, PASSWORD_HASH } from '@onepipe/sdk'

const LOGINS = Number(process.env.LOGINS ?? 200)
const INFLIGHT = Number(process.env.INFLIGHT ?? 4)
const kind = process.env.BENCH_DB ?? 'pglite'
const schema = `bench_auth_${randomBytes(4).toString('hex')}`
const db =
  kind === 'postgres'
    ? Database.create('bench').postgres(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres').schema(schema).build()
    : Database.create('bench').pglite('memory://').build()
let ip = 0
const auth = Auth.create('bench').db(db).secret(randomBytes(32).toString('base64url')).clientAddress(() => `10.0.${(ip >> 8) & 255}.${ip++ & 255}`).build()
await auth.ready()
const app = new Hono()
auth.routes(app)

const email = 'bench@example.com'
const password = 'correct horse battery staple'
await auth.users.create({ email, password, roles: ['operator'] })
const [row] = await db.query('SELECT password_hash FROM _onepipe_auth_users WHERE email = $1', [email])

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
const ms = (x) => `${x.toFixed(1)} ms`
async function timed(n, inflight, fn) {
  const lat = []
  let next = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (next < n) {
        next++
        const t = performance.now()
        await fn()
        lat.push(performance.now() - t)
      }
    }),
  )
  const secs = (performance.now() - t0) / 1000
  return { p50: pct(lat, 50), p99: pct(lat, 99), perSec: n / secs }
}

const login = async () => {
  const res = await app.request('/__onepipe/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) })
  if (res.status !== 200) throw new Error(`login answered ${res.status}: ${await res.text()}`)
  return res.json()
}
const wrong = async () => {
  const res = await app.request('/__onepipe/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `nobody-${ip}@example.com`, password }) })
  if (res.status !== 401) throw new Error(`unknown email answered ${res.status}`)
}

// Warm-up: the dummy hash, JIT, the database's caches.
for (let i = 0; i < 5; i++) await login()

const hashOnly = await timed(LOGINS, 1, () => verify(row.password_hash, password))
const hashParallel = await timed(LOGINS, INFLIGHT, () => verify(row.password_hash, password))
const seq = await timed(LOGINS, 1, login)
const par = await timed(LOGINS, INFLIGHT, login)
const unknown = await timed(Math.min(LOGINS, 100), 1, wrong)

let refreshToken = (await login()).refreshToken
const refresh = await timed(LOGINS, 1, async () => {
  refreshToken = (await auth.refresh(refreshToken)).refreshToken
})

const { accessToken } = await login()
const application = await auth.applications.create({ name: 'bench' })
const { key } = await auth.apiKeys.create(application.id, { name: 'bench', roles: ['viewer'] })
async function perRequest(headers) {
  const N = 50_000
  await auth.authenticate(new Request('http://x/', { headers }))
  const t0 = performance.now()
  for (let i = 0; i < N; i++) await auth.authenticate(new Request('http://x/', { headers }))
  return ((performance.now() - t0) * 1000) / N
}
const bearerUs = await perRequest({ authorization: `Bearer ${accessToken}` })
const keyUs = await perRequest({ 'x-api-key': key })
const noneUs = await perRequest({})

const p = PASSWORD_HASH
console.log(`\nAuth login on ${kind === 'postgres' ? 'PostgreSQL' : 'PGlite (embedded)'}, Node ${process.version}, ${availableParallelism()} cores, load ${loadavg()[0].toFixed(2)}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4}`)
console.log(`hash: ${p.algorithm} m=${p.memoryKiB} KiB (${(p.memoryKiB / 1024).toFixed(0)} MiB), t=${p.iterations}, p=${p.parallelism} (OWASP Password Storage Cheat Sheet)\n`)
console.log('| measure | p50 | p99 | per second |')
console.log('|---|---:|---:|---:|')
console.log(`| argon2id verify alone, 1 at a time | ${ms(hashOnly.p50)} | ${ms(hashOnly.p99)} | ${hashOnly.perSec.toFixed(0)} |`)
console.log(`| argon2id verify alone, ${INFLIGHT} in flight | ${ms(hashParallel.p50)} | ${ms(hashParallel.p99)} | ${hashParallel.perSec.toFixed(0)} |`)
console.log(`| POST /__onepipe/auth/login, 1 at a time | ${ms(seq.p50)} | ${ms(seq.p99)} | ${seq.perSec.toFixed(0)} |`)
console.log(`| POST /__onepipe/auth/login, ${INFLIGHT} in flight | ${ms(par.p50)} | ${ms(par.p99)} | ${par.perSec.toFixed(0)} |`)
console.log(`| login with an unknown email (dummy verify), 1 at a time | ${ms(unknown.p50)} | ${ms(unknown.p99)} | ${unknown.perSec.toFixed(0)} |`)
console.log(`| refresh (rotation, one transaction), 1 at a time | ${ms(refresh.p50)} | ${ms(refresh.p99)} | ${refresh.perSec.toFixed(0)} |`)
console.log(`\nauthenticate(), common case (status in memory): Bearer ${bearerUs.toFixed(1)} µs, X-API-Key ${keyUs.toFixed(1)} µs, no credentials ${noneUs.toFixed(1)} µs per request`)

await auth.close()
if (kind === 'postgres') await db.execute(`DROP SCHEMA "${schema}" CASCADE`)
await db.close()
