// bench/streams: OnePipe's Unbroken server on its file store (fsync before
// every acknowledgement, group commit) beside the Durable Streams reference
// server (@durable-streams/server, file-backed), each in its own process, in
// one run, with the same 100-byte JSON messages. Two more phases put it
// beside the production engines that run on this machine:
//
// - `redis`: the Unbroken server on its Redis store beside raw Redis
//   Streams from Node (ioredis XADD, XREAD BLOCK) on the same Redis;
// - `nats`: the Unbroken server on its file store beside NATS JetStream
//   publish-with-ack on file storage, on a nats-server the bench starts with
//   the default sync interval, and on one with `sync_interval: always` when
//   the binary is 2.10 or later (NATS_SERVER names it; see nats.mjs).
//
// Usage: npx tsc -b packages/streams && node bench/run.mjs streams [phase ...]
// With no phase every one runs; name some (e.g. `catchup lp` or `redis nats`)
// to run only those. BENCH_SECONDS (default 4) sets each load phase's
// duration; REDIS_URL (default redis://127.0.0.1:6379) the Redis of `redis`.
import http from 'node:http'
import { loadavg } from 'node:os'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { startServer, printTable } from '../lib/report.mjs'
import { RawRedisStreams, describeRedisDurability } from './redis.mjs'
import { JetStreamPeer, NATS_SERVER, describeJetStreamSync, natsServerVersion, startNats, supportsSyncAlways } from './nats.mjs'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4)
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const FILL = 100_000
const TAIL = 100
// Enough samples that p99 is not just the second-worst of a handful.
const SSE_MESSAGES = 500
const SSE_INTERVAL_MS = 5
const LONG_POLLS = 200
const CATCH_UP = 10_000
const CATCH_UP_READS = 20
// What clients send: none, one coding, and a browser's list.
const ENCODINGS = ['identity', 'gzip', 'br', 'gzip, deflate, br']
const here = (f) => fileURLToPath(new URL(f, import.meta.url))
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
let unique = 0

/** A JSON message of exactly 100 bytes. */
function message(t = 0) {
  const base = JSON.stringify({ t, p: '' })
  return JSON.stringify({ t, p: 'x'.repeat(100 - base.length) })
}
const MESSAGE = message()
if (Buffer.byteLength(MESSAGE) !== 100) throw new Error('message is not 100 bytes')

function request(port, method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        if (res.statusCode >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 200)}`))
        else resolve({ status: res.statusCode, headers: res.headers, text })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function createStream(port) {
  const path = `/v1/stream/bench-${process.pid}-${++unique}`
  await request(port, 'PUT', path)
  return path
}

/** Appends/s over `streams` streams with `connections` connections in total, spread evenly. */
async function appendRate(port, connections, streams) {
  const paths = []
  for (let i = 0; i < streams; i++) paths.push(await createStream(port))
  const runs = await Promise.all(
    paths.map((path) =>
      autocannon({
        url: `http://127.0.0.1:${port}${path}`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: MESSAGE,
        connections: connections / streams,
        duration: SECONDS,
      }),
    ),
  )
  let ok = 0
  for (const r of runs) {
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`append run had ${r.non2xx} non-2xx and ${r.errors} errors`)
    ok += r['2xx']
  }
  return ok / SECONDS
}

/** Reads/s of the last 100 messages of a 100k-message stream (and checks one answer). */
async function tailReads(port) {
  const path = await createStream(port)
  const batch = 1000
  const body = `[${Array.from({ length: batch }, () => MESSAGE).join(',')}]`
  for (let n = 0; n < FILL - TAIL; n += batch) await request(port, 'POST', path, body)
  const mark = await request(port, 'HEAD', path)
  const offset = mark.headers['stream-next-offset']
  for (let i = 0; i < TAIL; i++) await request(port, 'POST', path, MESSAGE)
  const check = await request(port, 'GET', `${path}?offset=${offset}`)
  const got = JSON.parse(check.text).length
  if (got !== TAIL) throw new Error(`tail read returned ${got} messages, expected ${TAIL}`)
  const r = await autocannon({ url: `http://127.0.0.1:${port}${path}?offset=${offset}`, connections: 8, duration: SECONDS })
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`read run had ${r.non2xx} non-2xx and ${r.errors} errors`)
  return { rate: r['2xx'] / SECONDS, p50: r.latency.p50 }
}

/** Parses SSE `data` events of a JSON stream into their messages. */
function sseReader(onMessages, onControl) {
  let buf = ''
  return (chunk) => {
    buf += chunk
    for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
      const block = buf.slice(0, end)
      buf = buf.slice(end + 2)
      let event = 'message'
      const data = []
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim()
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
      }
      if (event === 'data') {
        const value = JSON.parse(data.join('\n'))
        onMessages(Array.isArray(value) ? value : [value])
      } else if (event === 'control') onControl()
    }
  }
}

/** p50/p99 append→delivery latency (ms) of paced appends to `subscribers` SSE readers. */
async function sseLatency(port, subscribers) {
  const path = await createStream(port)
  const head = await request(port, 'HEAD', path)
  const from = head.headers['stream-next-offset']
  const latencies = []
  const requests = []
  let connected = 0
  let done = 0
  let allConnected
  const connectedP = new Promise((r) => (allConnected = r))
  let allDone
  const doneP = new Promise((r) => (allDone = r))
  for (let i = 0; i < subscribers; i++) {
    let seen = 0
    let first = true
    const req = http.get({ host: '127.0.0.1', port, path: `${path}?offset=${from}&live=sse` }, (res) => {
      res.setEncoding('utf8')
      res.on(
        'data',
        sseReader(
          (msgs) => {
            const now = performance.now()
            for (const m of msgs) latencies.push(now - m.t)
            seen += msgs.length
            if (seen >= SSE_MESSAGES && seen - msgs.length < SSE_MESSAGES && ++done === subscribers) allDone()
          },
          () => {
            if (first && ++connected === subscribers) allConnected()
            first = false
          },
        ),
      )
      res.on('error', () => {})
    })
    req.on('error', () => {})
    requests.push(req)
  }
  await connectedP
  for (let i = 0; i < SSE_MESSAGES; i++) {
    await request(port, 'POST', path, message(performance.now()))
    await new Promise((r) => setTimeout(r, SSE_INTERVAL_MS))
  }
  const timeout = new Promise((r) => setTimeout(r, 15_000, 'timeout'))
  const outcome = await Promise.race([doneP, timeout])
  for (const req of requests) req.destroy()
  if (outcome === 'timeout') throw new Error(`SSE: only ${done}/${subscribers} subscribers got all ${SSE_MESSAGES} messages`)
  latencies.sort((a, b) => a - b)
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]
  return { p50: pct(50), p99: pct(99) }
}

/** p50/p99 time (ms) from an append to the answer of a long-poll waiting at the stream's tail. */
async function longPollWake(port) {
  const path = await createStream(port)
  const latencies = []
  for (let i = 0; i < LONG_POLLS; i++) {
    const from = (await request(port, 'HEAD', path)).headers['stream-next-offset']
    const poll = request(port, 'GET', `${path}?offset=${from}&live=long-poll`)
    // Give the poll time to be waiting (one that is not yet answers at once, which only flatters no one).
    await new Promise((r) => setTimeout(r, 5))
    const t = performance.now()
    await request(port, 'POST', path, MESSAGE)
    const res = await poll
    latencies.push(performance.now() - t)
    if (res.status !== 200) throw new Error(`long-poll answered ${res.status}, expected the appended message`)
  }
  latencies.sort((a, b) => a - b)
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]
  return { p50: pct(50), p99: pct(99) }
}

/** One GET with `accept-encoding`, the body kept exactly as it came off the socket (still compressed). */
function rawGet(port, path, acceptEncoding) {
  return new Promise((resolve, reject) => {
    const headers = acceptEncoding === 'identity' ? {} : { 'accept-encoding': acceptEncoding }
    const t = performance.now()
    http
      .get({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => resolve({ ms: performance.now() - t, status: res.statusCode, coding: res.headers['content-encoding'] ?? 'identity', body: Buffer.concat(chunks) }))
        res.on('error', reject)
      })
      .on('error', reject)
  })
}

function decoded(r) {
  if (r.coding === 'gzip') return gunzipSync(r.body)
  if (r.coding === 'br') return brotliDecompressSync(r.body)
  if (r.coding === 'deflate') throw new Error('deflate answered: not expected from either server')
  return r.body
}

/**
 * A catch-up read of a whole 10,000-message stream (1,010,001 bytes as
 * identity JSON) per Accept-Encoding: the body bytes on the wire (headers
 * and chunk framing aside), the coding the server chose, and the p50 time
 * to the last byte over sequential reads. Every answer is decoded and must
 * equal the identity body.
 */
async function catchUpRead(port) {
  const path = await createStream(port)
  const batch = 1000
  // Timestamps like performance.now(): varied digits, as real messages have.
  const messages = Array.from({ length: CATCH_UP }, (_, i) => message(12_345.678 + i * 5.123456789))
  for (let n = 0; n < CATCH_UP; n += batch) await request(port, 'POST', path, `[${messages.slice(n, n + batch).join(',')}]`)
  const identity = await rawGet(port, `${path}?offset=-1`, 'identity')
  if (identity.coding !== 'identity') throw new Error(`no Accept-Encoding was answered with ${identity.coding}`)
  if (identity.body.toString('utf8') !== `[${messages.join(',')}]`) throw new Error('the catch-up read does not return the 10,000 messages')
  const out = {}
  for (const ae of ENCODINGS) {
    const first = await rawGet(port, `${path}?offset=-1`, ae)
    if (first.status !== 200 || !decoded(first).equals(identity.body)) throw new Error(`Accept-Encoding: ${ae} did not decode to the identity body`)
    const times = []
    for (let i = 0; i < CATCH_UP_READS; i++) times.push((await rawGet(port, `${path}?offset=-1`, ae)).ms)
    times.sort((x, y) => x - y)
    out[ae] = { bytes: first.body.byteLength, coding: first.coding, p50: times[Math.floor(times.length / 2)] }
  }
  return out
}

const PHASES = {
  seq: (port) => appendRate(port, 1, 1),
  c64: (port) => appendRate(port, 64, 1),
  c64x16: (port) => appendRate(port, 64, 16),
  read: (port) => tailReads(port),
  sse1: (port) => sseLatency(port, 1),
  sse50: (port) => sseLatency(port, 50),
  lp: (port) => longPollWake(port),
  catchup: (port) => catchUpRead(port),
}

/**
 * The Unbroken server on the Redis store beside raw Redis Streams on the
 * same Redis, measure by measure, OnePipe first: appends sequential and 64
 * concurrent (64 HTTP connections; 64 Redis connections with one XADD each
 * in flight, and 64 XADDs in flight on one connection, pipelined), live delivery to one reader (SSE; an XREAD BLOCK loop) and an
 * append waking a reader waiting at the tail (long-poll; XREAD BLOCK).
 */
async function redisPhase() {
  const raw = new RawRedisStreams(REDIS_URL)
  const durability = await raw.durability()
  const ours = await startServer(here('./ours-redis-server.mjs'), { REDIS_URL })
  const o = {}
  const p = {}
  try {
    o.seq = await appendRate(ours.port, 1, 1)
    p.seq = await raw.xaddRate(1, SECONDS, MESSAGE)
    o.c64 = await appendRate(ours.port, 64, 1)
    p.c64 = await raw.xaddRate(64, SECONDS, MESSAGE)
    p.c64one = await raw.xaddRate(1, SECONDS, MESSAGE, 64)
    o.live = await sseLatency(ours.port, 1)
    p.live = await raw.xreadDelivery(SSE_MESSAGES, SSE_INTERVAL_MS, message)
    o.wake = await longPollWake(ours.port)
    p.wake = await raw.xreadWake(LONG_POLLS, MESSAGE)
  } finally {
    await ours.stop()
    await raw.cleanup()
  }
  console.error(`redis: onepipe ${JSON.stringify(o)} | raw redis streams ${JSON.stringify(p)}`)
  return { o, p, durability }
}

/**
 * The Unbroken server on the file store beside JetStream publish-with-ack on
 * file storage: on a server with the default sync interval, and on one that
 * syncs always when this nats-server has the option. Appends sequential and
 * 64 concurrent (64 HTTP connections; 64 NATS connections with one publish
 * each awaiting its ack, and 64 such publishers sharing one connection, as
 * one NATS client per process usually does), and live delivery to one reader (SSE; an ordered
 * consumer). Each server runs only during its own measures.
 */
async function natsPhase() {
  const variants = [{ key: 'interval', syncAlways: false }]
  const version = natsServerVersion().text
  if (supportsSyncAlways()) variants.push({ key: 'always', syncAlways: true })
  const ours = await startServer(here('./ours-server.mjs'))
  const o = {}
  const p = {}
  const servers = {}
  try {
    o.seq = await appendRate(ours.port, 1, 1)
    o.c64 = await appendRate(ours.port, 64, 1)
    o.live = await sseLatency(ours.port, 1)
    for (const v of variants) {
      const server = await startNats({ syncAlways: v.syncAlways })
      const js = new JetStreamPeer(server.port)
      try {
        servers[v.key] = describeJetStreamSync(server)
        p[v.key] = {
          seq: await js.publishRate(1, SECONDS, MESSAGE),
          c64: await js.publishRate(64, SECONDS, MESSAGE),
          c64one: await js.publishRate(1, SECONDS, MESSAGE, 64),
          live: await js.consumerDelivery(SSE_MESSAGES, SSE_INTERVAL_MS, message),
        }
      } finally {
        await js.close()
        await server.stop()
      }
    }
  } finally {
    await ours.stop()
  }
  console.error(`nats: onepipe ${JSON.stringify(o)} | jetstream ${JSON.stringify(p)}`)
  const skipped = variants.length === 1 ? `${NATS_SERVER} is ${version}: no server with sync_interval: always (needs 2.10 or later; set NATS_SERVER to such a binary), so no equal-durability JetStream row` : undefined
  return { o, p, servers, skipped }
}

const EXTRA = { redis: redisPhase, nats: natsPhase }
const chosen = process.argv.slice(2)
for (const p of chosen) {
  if (!(p in PHASES) && !(p in EXTRA)) {
    console.error(`unknown phase "${p}"; phases: ${[...Object.keys(PHASES), ...Object.keys(EXTRA)].join(', ')}`)
    process.exit(2)
  }
}
const phases = chosen.length > 0 ? chosen.filter((p) => p in PHASES) : Object.keys(PHASES)
const extras = chosen.length > 0 ? chosen.filter((p) => p in EXTRA) : Object.keys(EXTRA)

const t0 = Date.now()
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ')
const loadBefore = load()
const a = {}
const b = {}
if (phases.length > 0) {
  const ours = await startServer(here('./ours-server.mjs'))
  const peer = await startServer(here('./peer-server.mjs'))
  try {
    // Phase by phase, OnePipe then the reference, so both see the same
    // moment of this shared machine; the idle server waits in its own process.
    for (const phase of phases) {
      const run = PHASES[phase]
      a[phase] = await run(ours.port)
      b[phase] = await run(peer.port)
      console.error(`${phase}: onepipe ${JSON.stringify(a[phase])} | durable-streams ${JSON.stringify(b[phase])}`)
    }
  } finally {
    await ours.stop()
    await peer.stop()
  }
}
const extra = {}
try {
  for (const name of extras) extra[name] = await EXTRA[name]()
} finally {
  agent.destroy()
}
const rows = {
  seq: () => [{ name: 'sequential appends (1 connection)', ours: a.seq, peer: b.seq, unit: 'appends/s' }],
  c64: () => [{ name: '64 concurrent appends, 1 stream', ours: a.c64, peer: b.c64, unit: 'appends/s' }],
  c64x16: () => [{ name: '64 concurrent appends, 16 streams', ours: a.c64x16, peer: b.c64x16, unit: 'appends/s' }],
  read: () => [{ name: 'read last 100 of 100k messages', ours: a.read.rate, peer: b.read.rate, unit: 'reads/s' }],
  sse1: () => [
    { name: 'SSE delivery p50, 1 subscriber', ours: a.sse1.p50, peer: b.sse1.p50, unit: 'ms', higherIsBetter: false },
    { name: 'SSE delivery p99, 1 subscriber', ours: a.sse1.p99, peer: b.sse1.p99, unit: 'ms', higherIsBetter: false },
  ],
  sse50: () => [
    { name: 'SSE delivery p50, 50 subscribers', ours: a.sse50.p50, peer: b.sse50.p50, unit: 'ms', higherIsBetter: false },
    { name: 'SSE delivery p99, 50 subscribers', ours: a.sse50.p99, peer: b.sse50.p99, unit: 'ms', higherIsBetter: false },
  ],
  lp: () => [
    { name: 'long-poll at the tail: append → answer p50', ours: a.lp.p50, peer: b.lp.p50, unit: 'ms', higherIsBetter: false },
    { name: 'long-poll at the tail: append → answer p99', ours: a.lp.p99, peer: b.lp.p99, unit: 'ms', higherIsBetter: false },
  ],
  catchup: () =>
    ENCODINGS.flatMap((ae) => {
      const [o, p] = [a.catchup[ae], b.catchup[ae]]
      const what = `catch-up read of 10,000 messages, Accept-Encoding: ${ae} (OnePipe sends ${o.coding}, reference ${p.coding})`
      return [
        { name: `${what}: bytes on the wire`, ours: o.bytes, peer: p.bytes, unit: 'B', higherIsBetter: false },
        { name: `${what}: time to last byte p50`, ours: o.p50, peer: p.p50, unit: 'ms', higherIsBetter: false },
      ]
    }),
}
const machine = `load average ${loadBefore} before / ${load()} after (shared 2-core machine: figures are noisy)`
if (phases.length > 0) {
  printTable(
    `bench/streams: file store, fsync on, 100-byte JSON messages, ${SECONDS}s per load phase, node ${process.version}, ${machine}`,
    'durable-streams',
    phases.flatMap((phase) => rows[phase]()),
  )
  console.log(
    '\nDurability: OnePipe file store — each acknowledged append is on stable storage first (O_DSYNC write, or write + fdatasync), one write per group-committed batch; ' +
      'Durable Streams reference (file-backed) — write + fdatasync of the segment file before each acknowledgement (appends arriving during an fdatasync share the next one), stream metadata in LMDB.',
  )
}
if (extra.redis) {
  const { o, p, durability } = extra.redis
  printTable(
    `bench/streams redis: OnePipe's Unbroken server on its Redis store (HTTP, its own process) beside raw Redis Streams from Node (ioredis, in the load generator), same Redis, 100-byte JSON messages, ${SECONDS}s per load measure, ${machine}`,
    'Redis Streams',
    [
      { name: 'sequential appends: 1 HTTP connection / 1 XADD in flight', ours: o.seq, peer: p.seq, unit: 'appends/s' },
      { name: '64 concurrent appends, 1 stream: 64 HTTP connections / 64 connections, 1 XADD in flight each', ours: o.c64, peer: p.c64, unit: 'appends/s' },
      { name: 'the same OnePipe figure / 1 connection, 64 XADDs in flight (pipelined)', ours: o.c64, peer: p.c64one, unit: 'appends/s' },
      { name: `live delivery p50, 1 reader, ${SSE_MESSAGES} paced appends: SSE / XREAD BLOCK loop`, ours: o.live.p50, peer: p.live.p50, unit: 'ms', higherIsBetter: false },
      { name: `live delivery p99, same`, ours: o.live.p99, peer: p.live.p99, unit: 'ms', higherIsBetter: false },
      { name: 'reader waiting at the tail: append → answer p50, long-poll / XREAD BLOCK', ours: o.wake.p50, peer: p.wake.p50, unit: 'ms', higherIsBetter: false },
      { name: 'reader waiting at the tail: append → answer p99, same', ours: o.wake.p99, peer: p.wake.p99, unit: 'ms', higherIsBetter: false },
    ],
  )
  console.log(`\nDurability: both rows write to the same Redis — ${describeRedisDurability(durability)}. OnePipe's Redis store acknowledges once its script ran, like XADD.`)
}
if (extra.nats) {
  const { o, p, servers, skipped } = extra.nats
  const label = { interval: 'JetStream, default sync', always: 'JetStream, sync_interval: always' }
  const natsRows = []
  for (const key of Object.keys(p)) {
    natsRows.push(
      { name: `sequential appends: 1 HTTP connection / 1 publish-with-ack in flight — ${label[key]}`, ours: o.seq, peer: p[key].seq, unit: 'appends/s' },
      { name: `64 concurrent appends, 1 stream: 64 HTTP connections / 64 NATS connections, 1 publish-with-ack in flight each — ${label[key]}`, ours: o.c64, peer: p[key].c64, unit: 'appends/s' },
      { name: `the same OnePipe figure / 1 NATS connection, 64 publishes-with-ack in flight — ${label[key]}`, ours: o.c64, peer: p[key].c64one, unit: 'appends/s' },
      { name: `live delivery p50, 1 reader, ${SSE_MESSAGES} paced appends: SSE / ordered consumer — ${label[key]}`, ours: o.live.p50, peer: p[key].live.p50, unit: 'ms', higherIsBetter: false },
      { name: `live delivery p99, same — ${label[key]}`, ours: o.live.p99, peer: p[key].live.p99, unit: 'ms', higherIsBetter: false },
    )
  }
  printTable(
    `bench/streams nats: OnePipe's Unbroken server on its file store (HTTP, its own process) beside NATS JetStream publish-with-ack on file storage (nats client in the load generator), 100-byte JSON messages, ${SECONDS}s per load measure, ${machine}`,
    'JetStream',
    natsRows,
  )
  console.log(
    `\nDurability: OnePipe file store — each acknowledged append is on stable storage first (O_DSYNC write, or write + fdatasync), one write per group-committed batch. ` +
      Object.keys(servers)
        .map((k) => `${label[k]} — ${servers[k]}.`)
        .join(' ') +
      (skipped ? ` ${skipped}.` : ''),
  )
}
console.log(`\n(total ${((Date.now() - t0) / 1000).toFixed(0)} s)`)
