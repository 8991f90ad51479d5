// bench/streams' raw Redis Streams peer: XADD and XREAD BLOCK from Node
// (ioredis, the client OnePipe's Redis store uses), in the load generator's
// process, against the same Redis as OnePipe's Redis store. Every function
// works on keys of its own under one prefix, deleted by cleanup().
import { Redis } from 'ioredis'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function percentiles(latencies) {
  latencies.sort((a, b) => a - b)
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]
  return { p50: pct(50), p99: pct(99) }
}

/** The message a Redis Stream entry carries in its one field `d`. */
function payload(fields) {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === 'd') return fields[i + 1]
  throw new Error('entry has no field d')
}

export class RawRedisStreams {
  #url
  #prefix
  #n = 0

  constructor(url) {
    this.#url = url
    this.#prefix = `bench:raw-streams:${process.pid}:`
  }

  #key() {
    return `${this.#prefix}${++this.#n}`
  }

  async #connect() {
    const r = new Redis(this.#url, { lazyConnect: true })
    await r.connect()
    return r
  }

  /** Persistence as the server reports it: appendonly, appendfsync and save. */
  async durability() {
    const r = await this.#connect()
    try {
      const get = async (k) => (await r.config('GET', k))[1] ?? ''
      return { appendonly: await get('appendonly'), appendfsync: await get('appendfsync'), save: await get('save'), version: /redis_version:(\S+)/.exec(await r.info('server'))?.[1] }
    } finally {
      r.disconnect()
    }
  }

  /**
   * XADD/s to one stream for `seconds` from `connections` connections, each
   * with `perConnection` loops of one XADD (of `message`, in field `d`) in
   * flight at a time (several on one connection are pipelined).
   */
  async xaddRate(connections, seconds, message, perConnection = 1) {
    const key = this.#key()
    const clients = await Promise.all(Array.from({ length: connections }, () => this.#connect()))
    try {
      const end = performance.now() + seconds * 1000
      const t0 = performance.now()
      const counts = await Promise.all(
        clients.flatMap((c) => Array.from({ length: perConnection }, () => c)).map(async (c) => {
          let n = 0
          while (performance.now() < end) {
            await c.xadd(key, '*', 'd', message)
            n++
          }
          return n
        }),
      )
      const total = counts.reduce((a, b) => a + b, 0)
      const stored = await clients[0].xlen(key)
      if (stored !== total) throw new Error(`Redis stream holds ${stored} entries, ${total} XADDs were acknowledged`)
      return total / ((performance.now() - t0) / 1000)
    } finally {
      for (const c of clients) c.disconnect()
    }
  }

  /**
   * p50/p99 XADD→delivery latency (ms) to one live reader looping XREAD
   * BLOCK from the last id it saw, over `count` messages appended one after
   * another with `intervalMs` between them (each carries its send time).
   */
  async xreadDelivery(count, intervalMs, message) {
    const key = this.#key()
    const [writer, reader] = await Promise.all([this.#connect(), this.#connect()])
    try {
      const latencies = []
      const reading = (async () => {
        let last = '0-0'
        while (latencies.length < count) {
          const res = await reader.xread('BLOCK', 15_000, 'STREAMS', key, last)
          if (!res) throw new Error(`XREAD BLOCK timed out after ${latencies.length}/${count} messages`)
          const now = performance.now()
          for (const [id, fields] of res[0][1]) {
            latencies.push(now - JSON.parse(payload(fields)).t)
            last = id
          }
        }
      })()
      for (let i = 0; i < count; i++) {
        await writer.xadd(key, '*', 'd', message(performance.now()))
        await sleep(intervalMs)
      }
      await reading
      if (latencies.length !== count) throw new Error(`XREAD delivered ${latencies.length} messages, ${count} were appended`)
      return percentiles(latencies)
    } finally {
      writer.disconnect()
      reader.disconnect()
    }
  }

  /**
   * p50/p99 time (ms) from an XADD to the answer of an XREAD BLOCK already
   * waiting at the stream's tail, over `count` rounds.
   */
  async xreadWake(count, message) {
    const key = this.#key()
    const [writer, reader] = await Promise.all([this.#connect(), this.#connect()])
    try {
      const latencies = []
      let last = '0-0'
      for (let i = 0; i < count; i++) {
        const poll = reader.xread('BLOCK', 30_000, 'STREAMS', key, last)
        // Give the read time to be blocked at the server, as the long-poll phase does.
        await sleep(5)
        const t = performance.now()
        const id = await writer.xadd(key, '*', 'd', message)
        const res = await poll
        latencies.push(performance.now() - t)
        if (!res || res[0][1].length !== 1 || res[0][1][0][0] !== id) throw new Error('XREAD BLOCK did not answer with the entry just added')
        last = id
      }
      return percentiles(latencies)
    } finally {
      writer.disconnect()
      reader.disconnect()
    }
  }

  /** Deletes every key this instance made. */
  async cleanup() {
    const r = await this.#connect()
    try {
      const keys = Array.from({ length: this.#n }, (_, i) => `${this.#prefix}${i + 1}`)
      if (keys.length > 0) await r.del(...keys)
    } finally {
      r.disconnect()
    }
  }
}

/** One line on what an acknowledged write survives, from the server's own settings. */
export function describeRedisDurability(d) {
  const aof = d.appendonly === 'yes' ? `AOF on, appendfsync ${d.appendfsync}${d.appendfsync === 'always' ? ' (fsync before each write is acknowledged)' : d.appendfsync === 'everysec' ? ' (fsync once a second: a power cut can lose the last second)' : ' (fsync left to the OS)'}` : 'AOF off'
  const rdb = d.save ? `RDB snapshots "save ${d.save}"` : 'no RDB snapshots (save "")'
  const none = d.appendonly !== 'yes' && !d.save ? ': an acknowledged write lives in memory only' : ''
  return `Redis ${d.version ?? ''} as configured here: appendonly=${d.appendonly}, appendfsync=${d.appendfsync}, save="${d.save}" — ${aof}, ${rdb}${none}`
}
