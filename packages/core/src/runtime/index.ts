import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { CacheLike } from '../cache/types.js'
import type { Database } from '../db/database.js'
import { recordable } from '../errors/record.js'

/** The structured logger every component gets (pino under `serve()`). */
export interface Logger {
  debug(obj: object | string, msg?: string): void
  info(obj: object | string, msg?: string): void
  warn(obj: object | string, msg?: string): void
  error(obj: object | string, msg?: string): void
  child(bindings: Record<string, unknown>): Logger
}

/** What `serve()` hands a component when it starts. */
export interface RuntimeContext {
  /** Unique per process; names the owner in every lease. */
  instanceId: string
  /** The app's default database (the one given to serve, else from the environment). */
  db: Database
  cache: CacheLike
  logger: Logger
  /**
   * Aborted the moment shutdown starts, before in-flight requests drain.
   * Every long-lived response (SSE, long-poll, WebSocket) must end when it
   * aborts: its client then reconnects to another instance while ordinary
   * requests finish, and the drain does not wait on a connection that never
   * ends. `sseResponse(next, { signal: rt.signal, … })` does this; a
   * long-poll answers what it has (e.g. 204); a WebSocket closes with 1001
   * (going away). Whatever is still open at the drain deadline is cut and
   * reported, so the shutdown hooks always run.
   */
  signal: AbortSignal
  /**
   * Proxies whose `X-Forwarded-For` is believed (`serve({ trustProxy })`),
   * for everything that reads a client's address (rate limits, login
   * throttling). Undefined: `ONEPIPE_TRUSTED_PROXIES`, else none.
   */
  trustProxy?: readonly string[] | undefined
  /**
   * Hono's `upgradeWebSocket` helper for this server (from `@hono/node-ws`
   * under `serve()`), for components that accept WebSocket connections on
   * a route: the upgrade request passes the app's middleware (the guard)
   * first. Undefined where the server takes no WebSockets (`app.request()`
   * in tests). Typed loosely here so core does not depend on Hono.
   */
  upgradeWebSocket?: unknown
}

/**
 * Anything `serve()` runs: a built primitive with engines to start, routes
 * to mount, or both. The hook names are distinct from user-facing methods
 * (a Workflow has `start(input)`, a Cron has `start()`), so one object can
 * be both.
 *
 * - `attach(rt)`: start engines (executors, schedulers, listeners); called
 *   once after the database is migrated, before the port opens.
 * - `routes(app, rt)`: add HTTP routes to the Hono app (`/__onepipe/…`,
 *   `/rpc/…`); auth for those prefixes is applied by `serve()`. A route that
 *   keeps its response open (SSE, long-poll, WebSocket) ends it when
 *   `rt.signal` aborts (see {@link RuntimeContext.signal}).
 * - `detach()`: stop engines and wait for in-flight work; called on shutdown
 *   after the HTTP server drained, before shutdown hooks, within a share of
 *   the Lifecycle timeout (a detach still running then is reported and left
 *   behind so the hooks still run).
 *
 * @example
 * ```ts
 * const ticker: Component = { kind: 'custom', name: 'ticker', async attach(rt) { rt.logger.info('up') } }
 * // A long-lived route: its SSE stream ends the moment shutdown starts.
 * const clock: Component = {
 *   kind: 'custom',
 *   name: 'clock',
 *   routes(app, rt) {
 *     const tick = async () => {
 *       await sleep(1000)
 *       return { data: new Date().toISOString() }
 *     }
 *     ;(app as Hono).get('/clock', () => sseResponse(tick, { onClose() {}, signal: rt.signal }))
 *   },
 * }
 * ```
 */
export interface Component {
  readonly kind: string
  readonly name: string
  attach?(rt: RuntimeContext): Promise<void>
  detach?(): Promise<void>
  routes?(app: unknown, rt: RuntimeContext): void
}

/**
 * A process-unique id for leases: host, pid and a random part, so a
 * restarted process with a reused pid is still a different owner.
 *
 * @example
 * ```ts
 * const id = newInstanceId() // "web-1:4242:8f1c2a"
 * ```
 */
export function newInstanceId(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
}

/**
 * A logger for primitives used outside `serve()`: warnings and errors as
 * JSON lines on stderr, so nothing fails silently; debug and info dropped.
 *
 * @example
 * ```ts
 * const log = stderrLogger.child({ component: 'orders' })
 * ```
 */
export const stderrLogger: Logger = makeStderrLogger({})

function makeStderrLogger(bindings: Record<string, unknown>): Logger {
  const write = (level: string) => (obj: object | string, msg?: string) => {
    // A logger must never throw: whatever was thrown (a BigInt, a cycle, a getter that throws) is
    // made storable first, and a line that still cannot be written is reduced to its message.
    let line: string
    try {
      const o = typeof obj === 'string' ? { msg: obj } : { ...(recordable(serializeErr(obj)) as object), ...(msg ? { msg } : {}) }
      line = JSON.stringify({ level, time: new Date().toISOString(), ...(recordable(bindings) as object), ...o })
    } catch {
      line = JSON.stringify({ level, time: new Date().toISOString(), msg: msg ?? 'an unprintable log line' })
    }
    process.stderr.write(line + '\n')
  }
  return { debug() {}, info() {}, warn: write('warn'), error: write('error'), child: (b) => makeStderrLogger({ ...bindings, ...b }) }
}

function serializeErr(obj: object): object {
  const e = (obj as { err?: unknown }).err
  if (!(e instanceof Error)) return obj
  return { ...obj, err: { name: e.name, message: e.message, stack: e.stack, ...(e as unknown as Record<string, unknown>) } }
}

/** A logger that writes nothing (for tests that assert on output). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger
  },
}
