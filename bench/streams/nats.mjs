// bench/streams' NATS JetStream peer: a nats-server started by the bench on
// a port of its own (pinned to core 1 like the other servers), with its
// JetStream store in a scratch directory on the same filesystem as OnePipe's
// file store, and publish-with-ack / consumer delivery from Node (the `nats`
// client) in the load generator's process.
//
// NATS_SERVER names the binary (default `nats-server` on PATH). The server
// started with `sync_interval: always` needs nats-server 2.10 or later;
// with an older one that server is skipped and the bench says so.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, StorageType } from 'nats'

const taskset = ['/usr/bin/taskset', '/bin/taskset'].find((p) => existsSync(p))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
export const NATS_SERVER = process.env.NATS_SERVER || 'nats-server'

function percentiles(latencies) {
  latencies.sort((a, b) => a - b)
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]
  return { p50: pct(50), p99: pct(99) }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** The binary's version as [major, minor, patch], and as printed. */
export function natsServerVersion() {
  const out = execFileSync(NATS_SERVER, ['--version'], { encoding: 'utf8' })
  const m = /v(\d+)\.(\d+)\.(\d+)/.exec(out)
  if (!m) throw new Error(`cannot read the version of ${NATS_SERVER}: ${out}`)
  return { parts: m.slice(1).map(Number), text: `v${m[1]}.${m[2]}.${m[3]}` }
}

/** Whether this nats-server accepts `jetstream { sync_interval: always }` (2.10 and later). */
export function supportsSyncAlways() {
  const [major, minor] = natsServerVersion().parts
  return major > 2 || (major === 2 && minor >= 10)
}

/**
 * Starts a JetStream server; `syncAlways` adds `sync_interval: always` to
 * its config. Resolves with { port, jetstream (the config its /varz reports),
 * stop } once /varz answers.
 */
export async function startNats({ syncAlways = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-jetstream-'))
  const [port, http] = [await freePort(), await freePort()]
  const conf = join(dir, 'server.conf')
  writeFileSync(
    conf,
    [`listen: "127.0.0.1:${port}"`, `http: "127.0.0.1:${http}"`, 'jetstream {', `  store_dir: ${JSON.stringify(join(dir, 'store'))}`, ...(syncAlways ? ['  sync_interval: always'] : []), '}', ''].join('\n'),
  )
  const pin = taskset && availableParallelism() >= 2
  const [cmd, args] = pin ? [taskset, ['-c', '1', NATS_SERVER, '-c', conf]] : [NATS_SERVER, ['-c', conf]]
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr.on('data', (d) => (log += d))
  let exited = false
  // A runner that dies mid-phase does not leave its server behind.
  const orphan = () => child.kill('SIGKILL')
  process.once('exit', orphan)
  child.once('exit', () => {
    exited = true
    process.off('exit', orphan)
  })
  const stop = async () => {
    if (!exited) {
      const gone = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await gone
    }
    rmSync(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + 20_000
  for (;;) {
    if (exited) {
      await stop()
      throw new Error(`${NATS_SERVER} exited: ${log.slice(-2000)}`)
    }
    try {
      const varz = await (await fetch(`http://127.0.0.1:${http}/varz`)).json()
      if (varz.jetstream?.config) return { port, version: varz.version, jetstream: varz.jetstream.config, stop }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`${NATS_SERVER} did not start: ${log.slice(-2000)}`)
    }
    await sleep(100)
  }
}

/** What an acknowledged publish survives on that server, from the config its /varz reports. */
export function describeJetStreamSync(server) {
  const c = server.jetstream
  if (c.sync_always) return `nats-server ${server.version}, file storage, sync_interval: always (fsync after each write to the stream's block file, before the ack)`
  if (c.sync_interval) return `nats-server ${server.version}, file storage, sync_interval ${c.sync_interval / 1e9} s (the server's default: acknowledged after the write to its block file, fsync in the background on that interval)`
  return `nats-server ${server.version}, file storage, sync interval not reported by this version (nats-server 2.9.10 acknowledges after the write to its block file and has its streams fsync in the background every 2 minutes, fixed in its code; sync_interval, and its value always, arrived in 2.10)`
}

/** A JetStream client of one server: each measurement on a stream (file storage) of its own. */
export class JetStreamPeer {
  #port
  #n = 0
  #nc
  #jsm

  constructor(port) {
    this.#port = port
  }

  async #stream() {
    this.#nc ??= await connect({ servers: `127.0.0.1:${this.#port}` })
    this.#jsm ??= await this.#nc.jetstreamManager()
    const name = `bench_${++this.#n}`
    const subject = `bench.${this.#n}`
    await this.#jsm.streams.add({ name, subjects: [subject], storage: StorageType.File })
    return { name, subject }
  }

  /**
   * Acknowledged publishes/s to one stream for `seconds` from `connections`
   * connections, each with `perConnection` publishers of one
   * publish-with-ack in flight at a time.
   */
  async publishRate(connections, seconds, message, perConnection = 1) {
    const { name, subject } = await this.#stream()
    const data = new TextEncoder().encode(message)
    const conns = await Promise.all(Array.from({ length: connections }, () => connect({ servers: `127.0.0.1:${this.#port}` })))
    try {
      const end = performance.now() + seconds * 1000
      const t0 = performance.now()
      const counts = await Promise.all(
        conns.flatMap((nc) => Array.from({ length: perConnection }, () => nc)).map(async (nc) => {
          const js = nc.jetstream()
          let n = 0
          while (performance.now() < end) {
            await js.publish(subject, data)
            n++
          }
          return n
        }),
      )
      const total = counts.reduce((a, b) => a + b, 0)
      const elapsed = (performance.now() - t0) / 1000
      const stored = (await this.#jsm.streams.info(name)).state.messages
      if (stored !== total) throw new Error(`JetStream stream holds ${stored} messages, ${total} publishes were acknowledged`)
      return total / elapsed
    } finally {
      await Promise.all(conns.map((nc) => nc.close()))
    }
  }

  /**
   * p50/p99 publish→delivery latency (ms) to one ordered consumer, over
   * `count` messages published with ack one after another with `intervalMs`
   * between them (each carries its send time). The consumer has received a
   * first message before the timed ones start.
   */
  async consumerDelivery(count, intervalMs, message) {
    const { name, subject } = await this.#stream()
    const js = this.#nc.jetstream()
    // An ordered consumer from the stream's first message (the stream is new).
    const consumer = await js.consumers.get(name)
    const messages = await consumer.consume()
    const latencies = []
    let first
    const firstP = new Promise((r) => (first = r))
    let all
    const allP = new Promise((r) => (all = r))
    const reading = (async () => {
      for await (const m of messages) {
        const now = performance.now()
        const v = JSON.parse(new TextDecoder().decode(m.data))
        if (v.warmup) first()
        else if (latencies.push(now - v.t) === count) all()
      }
    })()
    try {
      await js.publish(subject, new TextEncoder().encode(JSON.stringify({ warmup: true })))
      await firstP
      for (let i = 0; i < count; i++) {
        await js.publish(subject, new TextEncoder().encode(message(performance.now())))
        await sleep(intervalMs)
      }
      const outcome = await Promise.race([allP, sleep(15_000).then(() => 'timeout')])
      if (outcome === 'timeout') throw new Error(`the consumer received ${latencies.length}/${count} messages`)
      return percentiles(latencies)
    } finally {
      messages.stop()
      await reading
    }
  }

  async close() {
    await this.#nc?.close()
  }
}
