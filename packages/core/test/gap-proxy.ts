import { createServer, connect, type Server, type Socket } from 'node:net'
import type { Redis } from 'ioredis'
import type { Queryable } from '@onepipe/core'

/**
 * A TCP proxy in front of PostgreSQL or Redis that can hold NEW connections
 * back, for the tests of "a notification connection was lost": a process
 * connects through it, the test kills its LISTEN (or pub/sub) connection,
 * holds the reconnect, changes something while that process certainly hears
 * nothing, then lets the reconnect through. Connections already open keep
 * working meanwhile, so the process can still read once it is told to.
 *
 * @example
 * ```ts
 * const proxy = await GapProxy.start(postgresUrl())
 * spawnNode(app, [], { DATABASE_URL: proxy.url })
 * proxy.hold()
 * // … kill the LISTEN backend, wait for proxy.pending > 0, change something …
 * proxy.release()
 * ```
 */
export class GapProxy {
  /** `url` with its host and port replaced by the proxy's. */
  readonly url: string
  readonly #server: Server
  readonly #target: { host: string; port: number }
  readonly #sockets = new Set<Socket>()
  readonly #upstream = new Set<Socket>()
  #held: Socket[] = []
  #holding = false

  private constructor(server: Server, url: URL, target: { host: string; port: number }) {
    this.#server = server
    this.#target = target
    this.url = url.toString()
  }

  /** Starts a proxy on 127.0.0.1 to the host and port of `url` (a postgres:// or redis:// URL). */
  static async start(url: string): Promise<GapProxy> {
    const u = new URL(url)
    const target = { host: u.hostname, port: Number(u.port || (u.protocol === 'redis:' ? 6379 : 5432)) }
    const server = createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP address')
    u.hostname = '127.0.0.1'
    u.port = String(address.port)
    const proxy = new GapProxy(server, u, target)
    server.on('connection', (s) => proxy.#accept(s))
    return proxy
  }

  #accept(client: Socket): void {
    this.#sockets.add(client)
    client.on('close', () => this.#sockets.delete(client))
    client.on('error', () => client.destroy())
    if (this.#holding) {
      // Nothing is read from a held client: its startup bytes wait in the socket until release.
      client.pause()
      this.#held.push(client)
      return
    }
    this.#forward(client)
  }

  #forward(client: Socket): void {
    if (client.destroyed) return
    const up = connect(this.#target.port, this.#target.host)
    this.#upstream.add(up)
    this.#sockets.add(up)
    up.on('close', () => {
      this.#upstream.delete(up)
      this.#sockets.delete(up)
      client.destroy()
    })
    client.on('close', () => up.destroy())
    up.on('error', () => up.destroy())
    client.pipe(up)
    up.pipe(client)
    client.resume()
  }

  /** From now on, new connections wait (accepted, nothing forwarded) until {@link release}. */
  hold(): void {
    this.#holding = true
  }

  /** Forwards every held connection and stops holding. */
  release(): void {
    this.#holding = false
    const held = this.#held
    this.#held = []
    for (const c of held) this.#forward(c)
  }

  /** How many new connections are being held. */
  get pending(): number {
    return this.#held.filter((c) => !c.destroyed).length
  }

  /** The local ports of the proxy's connections to the server: what the server sees as its clients' ports. */
  upstreamPorts(): number[] {
    return [...this.#upstream].flatMap((s) => (s.localPort === undefined ? [] : [s.localPort]))
  }

  /** Closes every connection and the listening socket. */
  async close(): Promise<void> {
    this.#holding = false
    this.#held = []
    for (const s of this.#sockets) s.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/**
 * Terminates the LISTEN connections of process `pid` (every Database names
 * its connections `onepipe:<name>@<host>:<pid>`) and waits until each
 * backend is gone; answers how many. From then on that process hears no
 * NOTIFY until it has listened again.
 *
 * @example
 * ```ts
 * expect(await terminateListeners(db, reader.pid)).toBeGreaterThan(0)
 * ```
 */
export async function terminateListeners(db: Queryable, pid: number): Promise<number> {
  const rows = await db.query<{ ok: boolean }>(
    `SELECT pg_terminate_backend(pid, 10000) AS ok FROM pg_stat_activity
     WHERE application_name LIKE $1 AND query ILIKE 'listen %' AND pid <> pg_backend_pid()`,
    [`%:${pid}`],
  )
  return rows.filter((r) => r.ok).length
}

/**
 * Kills, by id, every pub/sub connection whose client port is one of
 * `ports` (a {@link GapProxy}'s upstream ports: the connections of the
 * process behind it), leaving every other client of a shared Redis alone;
 * answers how many.
 *
 * @example
 * ```ts
 * expect(await killSubscribers(redis, proxy.upstreamPorts())).toBe(1)
 * ```
 */
export async function killSubscribers(redis: Redis, ports: number[]): Promise<number> {
  const list = String(await redis.call('CLIENT', 'LIST'))
  let killed = 0
  for (const line of list.split('\n')) {
    const f = new Map(line.split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const))
    const port = Number(f.get('addr')?.split(':').at(-1))
    if (!ports.includes(port) || Number(f.get('sub') ?? 0) + Number(f.get('psub') ?? 0) === 0) continue
    killed += Number(await redis.call('CLIENT', 'KILL', 'ID', f.get('id') ?? ''))
  }
  return killed
}
