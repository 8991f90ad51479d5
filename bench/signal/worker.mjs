// One app instance of bench/signal, forked by run.mjs. STORE picks what it
// drives: a Signal on Redis or PostgreSQL, or the peer — Redis INCR on one key.
// Talks to run.mjs over IPC:
//   { cmd: 'run', inflight, seconds } → keeps `inflight` operations in flight for `seconds`, answers { count, ms }
//   { cmd: 'burst', n, inflight }     → runs n operations, `inflight` at a time (n: all at once), answers { ms } when all have resolved
//   { cmd: 'exit' }
import { Redis } from 'ioredis'

const { STORE, DATABASE_URL, SCHEMA, REDIS_URL, PREFIX, NAME, ONEPIPE_SDK } = process.env
// ONEPIPE_SDK measures another build of the SDK (an older commit's dist/index.js) on the same machine.
const { Database, RedisCache, Signal } = await import(ONEPIPE_SDK ?? '@onepipe/sdk')
let op
let close
if (STORE === 'incr') {
  const client = new Redis(REDIS_URL)
  const key = `${PREFIX}incr:${NAME}`
  op = () => client.incr(key)
  close = () => client.quit()
} else if (STORE === 'redis') {
  const cache = new RedisCache(REDIS_URL, PREFIX)
  const signal = Signal.create(NAME).default(0).cache(cache).build()
  op = () => signal.update((n) => n + 1)
  close = async () => {
    await signal.close()
    await cache.close()
  }
} else {
  const db = Database.create('bench-signal').postgres(DATABASE_URL).schema(SCHEMA).pool({ max: 4 }).build()
  await db.ready()
  const signal = Signal.create(NAME).default(0).db(db).build()
  op = () => signal.update((n) => n + 1)
  close = async () => {
    await signal.close()
    await db.close()
  }
}

async function run(inflight, seconds) {
  let count = 0
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (performance.now() < end) {
        await op()
        count++
      }
    }),
  )
  return { count, ms: performance.now() - t0 }
}

async function burst(n, inflight) {
  let left = n
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (left > 0) {
        left--
        await op()
      }
    }),
  )
  return { ms: performance.now() - t0 }
}

process.on('message', (m) => {
  const answer = m.cmd === 'run' ? run(m.inflight, m.seconds) : m.cmd === 'burst' ? burst(m.n, m.inflight) : close().then(() => process.exit(0))
  answer.then(
    (r) => process.send(r),
    (err) => {
      console.error(err)
      process.exit(1)
    },
  )
})
process.send({ ready: true })
