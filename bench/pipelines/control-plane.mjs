// One OnePipe control-plane process on PostgreSQL (DATABASE_URL, SCHEMA):
// the stage engine, PostgreSQL dispatch and the worker API on a free port,
// printed as PORT=<n>. SIGTERM stops it (parked pulls answer 204).
import { Auth, Database } from '@onepipe/sdk'
import { ControlPlane } from '@onepipe/pipelines'

const db = Database.create('bench-cp').postgres(process.env.DATABASE_URL).schema(process.env.SCHEMA).pool({ max: Number(process.env.POOL ?? 10) }).build()
// BENCH_TRACE=1: counts, by statement, what this process sends outside a
// transaction (each is a commit of its own) and its transactions; printed to
// stderr at exit. Diagnosis only: it wraps the Database object, not the engine.
const trace = process.env.BENCH_TRACE === '1' ? new Map() : undefined
if (trace) {
  const count = (k, ms) => {
    const e = trace.get(k) ?? { n: 0, ms: 0 }
    e.n++
    e.ms += ms
    trace.set(k, e)
  }
  const short = (sql) => String(sql).replace(/\s+/g, ' ').trim().slice(0, 90)
  const timed = async (k, p, t0 = performance.now()) => {
    try {
      return await p
    } finally {
      count(k, performance.now() - t0)
    }
  }
  for (const m of ['query', 'execute']) {
    const orig = db[m].bind(db)
    db[m] = (sql, ...rest) => timed(`${m}: ${short(sql)}`, orig(sql, ...rest))
  }
  const tx = db.transaction.bind(db)
  db.transaction = (fn, ...rest) => {
    const seen = []
    return timed(
      'transaction',
      tx(async (q) => {
        const wrapped = new Proxy(q, {
          get: (t, k) => (k === 'query' || k === 'execute' ? (sql, ...r) => (seen.push(short(sql).slice(0, 40)), timed(`  in tx: ${short(sql)}`, t[k](sql, ...r))) : typeof t[k] === 'function' ? t[k].bind(t) : t[k]),
        })
        try {
          return await fn(wrapped)
        } finally {
          count(`transaction: ${seen.join(' | ')}`, 0)
        }
      }, ...rest),
    )
  }
}
const auth = Auth.create('bench').db(db).secret(process.env.AUTH_SECRET).build()
const cp = ControlPlane.create().db(db).auth(auth).port(0).build()
await auth.ready()
await cp.start()
process.stdout.write(`PORT=${new URL(cp.url).port}\n`)

let stopping = false
process.on('SIGTERM', async () => {
  if (stopping) return
  stopping = true
  try {
    await cp.stop()
    await auth.close()
    await db.close()
  } finally {
    if (trace) for (const [k, e] of [...trace].sort((a, b) => b[1].n - a[1].n).slice(0, 30)) process.stderr.write(`trace ${String(e.n).padStart(7)} × ${(e.ms / e.n).toFixed(2).padStart(7)} ms  ${k}\n`)
    process.exit(0)
  }
})
