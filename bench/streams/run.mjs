// bench/streams: OnePipe's Unbroken server on its file store (fsync before
// every acknowledgement, group commit) beside the Durable Streams reference
// server (@durable-streams/server, file-backed), each in its own process, in
// one run, with the same 100-byte JSON messages.
//
// Usage: npx tsc -b packages/streams && node bench/run.mjs streams [phase ...]
// With no phase every one runs; name some (e.g. `catchup lp`) to run only
// those. BENCH_SECONDS (default 4) sets each load phase's duration.
import http from 'node:http'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { startServer, printTable } from '../lib/report.mjs'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4)
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
const chosen = process.argv.slice(2)
for (const p of chosen) {
  if (!(p in PHASES)) {
    console.error(`unknown phase "${p}"; phases: ${Object.keys(PHASES).join(', ')}`)
    process.exit(2)
  }
}
const phases = chosen.length > 0 ? chosen : Object.keys(PHASES)

const t0 = Date.now()
const ours = await startServer(here('./ours-server.mjs'))
const peer = await startServer(here('./peer-server.mjs'))
const a = {}
const b = {}
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
  agent.destroy()
  await ours.stop()
  await peer.stop()
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
printTable(
  `bench/streams: file store, fsync on, 100-byte JSON messages, ${SECONDS}s per load phase (shared 2-core machine: figures are noisy)`,
  'durable-streams',
  phases.flatMap((phase) => rows[phase]()),
)
console.log(`\n(total ${((Date.now() - t0) / 1000).toFixed(0)} s)`)
