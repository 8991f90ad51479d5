import { ConfigError, registerPrimitive, stderrLogger, TerminalError, ValidationError, type Component, type Logger, type RuntimeContext } from '@onepipe/core'
import { newHttpBatchRpcResponse, RpcSession, RpcTarget } from 'capnweb'
import type { Context, Hono } from 'hono'
import type { UpgradeWebSocket, WSContext } from 'hono/ws'
import { errorResponse, readBodyText, requestIdOf, respondError } from '../http/index.js'
import type { AuthUser } from '../rest/auth.js'
import type { Tenant, Tenants } from '../tenants/tenants.js'
import { flowFor, SessionSubscriptions, subscribeEvents, WsTransport, type EventFlowSource } from './ws.js'

/**
 * What an exposed method gets besides its arguments: the authenticated
 * caller (serve()'s guard refuses anonymous calls to `/rpc/*` unless they are
 * declared public), the request id, and a signal that aborts at shutdown.
 *
 * @example
 * ```ts
 * { user: { id: 'u1', kind: 'user', roles: ['operator'] }, requestId: '4f1…', signal }
 * ```
 */
export interface RpcCallContext {
  user: AuthUser | undefined
  /** The tenant the request names, checked for this caller, when the RPC was built with `.tenants(…)`. */
  tenant?: Tenant
  /** How the call came: one HTTP batch, or a WebSocket session (where callbacks and `subscribe` work). */
  transport?: 'http' | 'websocket'
  requestId: string
  signal: AbortSignal
}

/** An exposed method: the call context, then the caller's arguments (JSON values, or the results of earlier calls of the same batch). */
export type RpcMethod = (ctx: RpcCallContext, ...args: never[]) => unknown

/** The route of the HTTP batch: one request carries a chain of calls, each may use the results of the earlier ones. */
export const RPC_PIPELINE_PATH = '/rpc/pipeline'

/** The route of WebSocket sessions: calls, callbacks and `subscribe` over one connection. */
export const RPC_WS_PATH = '/rpc/ws'

/** A batch body larger than this is refused with 413 before anything runs; also the largest WebSocket message. */
export const MAX_RPC_BATCH_BYTES = 1024 * 1024

// Names a method may have: never one an object already carries (`constructor`, `__proto__`, `toString`…).
const METHOD = /^[a-z][A-Za-z0-9]{0,63}$/
const RESERVED = new Set(Object.getOwnPropertyNames(Object.prototype).concat(Object.getOwnPropertyNames(RpcTarget.prototype), ['then', 'catch', 'finally', 'dup', 'onRpcBroken']))

/**
 * Promise-pipelined RPC over HTTP (docs/rpc.md), on Cap'n Web's batch
 * protocol: a client sends a chain of dependent calls in one request
 * (`api.getOrg(api.getUser(id).orgId)`) and gets every result back in one
 * response. Only the methods given to `.expose()` can be called: the
 * allow-list is the target's whole surface, so `constructor`,
 * `__proto__` or any other property is "not a function" to a caller.
 *
 * @example
 * ```ts
 * const api = RPC.create('shop')
 *   .expose({
 *     getUser: async (ctx, id: string) => users.get(id),
 *     getOrg: async (ctx, id: string) => orgs.get(id),
 *   })
 *   .build()
 * await serve({ components: [api] })
 * // client: const s = newHttpBatchRpcSession('https://shop.example.com/rpc/pipeline')
 * //         const org = s.getOrg(s.getUser('u1').orgId); await org  → one HTTP request
 * ```
 */
export class RPC implements Component {
  readonly kind = 'rpc'
  readonly name: string
  readonly #Target: new (ctx: RpcCallContext) => RpcTarget
  readonly methods: readonly string[]
  readonly #c: RpcConfig

  /** @internal Use {@link RPC.create}. */
  constructor(name: string, methods: Map<string, RpcMethod>, c: RpcConfig = {}) {
    this.name = name
    this.#c = c
    const all = new Map(methods)
    const events = c.events
    if (events) {
      all.set('subscribe', (ctx: RpcCallContext, ...args: never[]) => {
        const subs = sessions.get(ctx)
        if (!subs) throw new ValidationError('subscribe', [{ path: '', message: `subscribe needs a WebSocket session (${RPC_WS_PATH}); an HTTP batch ends before any event could be delivered` }], { code: 'RPC_NEEDS_WEBSOCKET' })
        const [patterns, callback, options] = args as unknown[]
        return subscribeEvents(subs, flowFor(events, ctx.tenant), patterns, callback, options)
      })
    }
    this.methods = [...all.keys()]
    const ctxOf = new WeakMap<object, RpcCallContext>()
    class Target extends RpcTarget {
      constructor(ctx: RpcCallContext) {
        super()
        ctxOf.set(this, ctx)
      }
    }
    for (const [m, fn] of all) {
      Object.defineProperty(Target.prototype, m, {
        value: function (this: object, ...args: never[]) {
          const ctx = ctxOf.get(this)
          if (!ctx) throw new Error('RPC target without a call context')
          return fn(ctx, ...args)
        },
        enumerable: false,
      })
    }
    this.#Target = Target
  }

  /**
   * Starts an RPC builder.
   *
   * @example
   * ```ts
   * RPC.create('shop').expose({ ping: async () => 'pong' }).build()
   * ```
   */
  static create(name: string): RPCBuilder {
    return new RPCBuilder(name)
  }

  /**
   * Answers one batch: the body's chain of calls against a fresh target
   * bound to this request's caller. Used by the route; exposed for tests.
   */
  async handle(req: Request, ctx: RpcCallContext): Promise<Response> {
    try {
      return await newHttpBatchRpcResponse(req, new this.#Target(ctx), { limits: { maxDepth: 64 } })
    } catch (e) {
      // A method's own error is answered inside the batch; what throws here is the batch itself
      // (not Cap'n Web messages, an unknown message, a value nested past the limit): the caller's to fix.
      throw new TerminalError('RPC_MALFORMED', `The RPC batch is not valid Cap'n Web batch messages (one JSON message per line): ${e instanceof Error ? e.message : String(e)}`, { status: 400, cause: e })
    }
  }

  /**
   * Mounts `POST /rpc/pipeline` and, where the server takes WebSockets
   * (under serve()), `GET /rpc/ws` (serve() guards `/rpc/*`).
   */
  routes(app: unknown, rt?: RuntimeContext): void {
    const logger = rt?.logger ?? stderrLogger
    const signal = rt?.signal ?? new AbortController().signal
    ;(app as Hono).post(RPC_PIPELINE_PATH, async (c: Context) => {
      try {
        const text = await readBodyText(c, MAX_RPC_BATCH_BYTES)
        if (text.trim() === '') return errorResponse(400, 'VALIDATION_FAILED', 'The RPC batch is empty: send Cap\'n Web batch messages, one per line', requestIdOf(c))
        const user = c.get('user' as never) as AuthUser | undefined
        // The tenant is checked before any call runs: a batch for a tenant the caller may not enter runs nothing.
        const tenant = this.#c.tenants ? await this.#c.tenants.fromRequest(c.req.raw, user) : undefined
        return await this.handle(new Request(c.req.url, { method: 'POST', body: text }), { user, requestId: requestIdOf(c), signal, transport: 'http', ...(tenant ? { tenant } : {}) })
      } catch (e) {
        return respondError(c, e, logger)
      }
    })
    const upgrade = rt?.upgradeWebSocket as UpgradeWebSocket | undefined
    if (upgrade) this.#mountWebSocket(app as Hono, upgrade, signal, logger)
  }

  #mountWebSocket(app: Hono, upgrade: UpgradeWebSocket, signal: AbortSignal, logger: Logger): void {
    const open = new Set<WSContext>()
    // At shutdown every session ends with 1001 (going away): its client reconnects to another instance.
    signal.addEventListener('abort', () => {
      for (const ws of open) ws.close(1001, 'server shutting down')
    }, { once: true })
    app.get(RPC_WS_PATH, async (c, next) => {
      try {
        if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') return errorResponse(426, 'UPGRADE_REQUIRED', `${RPC_WS_PATH} takes WebSocket connections only; use POST ${RPC_PIPELINE_PATH} for HTTP batches`, requestIdOf(c), undefined, { upgrade: 'websocket' })
        if (signal.aborted) return errorResponse(503, 'SHUTTING_DOWN', 'This instance is shutting down; connect again', requestIdOf(c))
        // A browser sends its cookies with a cross-site WebSocket: only this site's pages (or the allowed origins) may open one.
        const origin = c.req.header('origin')
        if (origin !== undefined && !this.#originAllowed(origin, c.req.header('host'))) {
          return errorResponse(403, 'ORIGIN_NOT_ALLOWED', `WebSocket connections from ${origin} are not allowed; list it in RPC…allowOrigins()`, requestIdOf(c))
        }
        const user = c.get('user' as never) as AuthUser | undefined
        const tenant = this.#c.tenants ? await this.#c.tenants.fromRequest(c.req.raw, user) : undefined
        const ctx: RpcCallContext = { user, requestId: requestIdOf(c), signal, transport: 'websocket', ...(tenant ? { tenant } : {}) }
        const subs = new SessionSubscriptions()
        sessions.set(ctx, subs)
        let transport: WsTransport | undefined
        const end = (why: Error) => {
          transport?.closed(why)
          void subs.stopAll()
        }
        return await upgrade(() => ({
          onOpen: (_e, ws) => {
            open.add(ws)
            transport = new WsTransport(ws)
            // The session lives as long as its transport reads: a closed socket ends it.
            new RpcSession(transport, new this.#Target(ctx), { limits: { maxDepth: 64 } })
            if (signal.aborted) ws.close(1001, 'server shutting down')
          },
          onMessage: (e: { data: unknown }, ws) => {
            if (typeof e.data !== 'string') {
              ws.close(1003, 'RPC messages are text')
              return
            }
            transport?.deliver(e.data)
          },
          onClose: (_e, ws) => {
            open.delete(ws)
            end(new Error('the WebSocket closed'))
          },
          onError: (_e, ws) => {
            open.delete(ws)
            end(new Error('the WebSocket failed'))
          },
          // A socket error (a client's protocol error, an oversized message) lands here on Node 20, where
          // the helper cannot build its ErrorEvent; the close that follows cleans up either way.
        }), { onError: (err: unknown) => logger.warn({ err, requestId: ctx.requestId }, 'rpc websocket: the connection failed') })(c, next)
      } catch (e) {
        return respondError(c, e, logger)
      }
    })
  }

  #originAllowed(origin: string, host: string | undefined): boolean {
    if (this.#c.origins?.includes(origin) === true) return true
    try {
      return host !== undefined && new URL(origin).host === host
    } catch {
      return false
    }
  }
}

/** The subscriptions of each WebSocket session, by its call context (HTTP batches have none). */
const sessions = new WeakMap<RpcCallContext, SessionSubscriptions>()

/** What an RPC is built with besides its methods. */
interface RpcConfig {
  tenants?: Tenants
  events?: EventFlowSource
  origins?: string[]
}

/**
 * Fluent configuration for {@link RPC}.
 *
 * @example
 * ```ts
 * RPC.create('shop').expose({ getUser: async (ctx, id: string) => ({ id }) }).build()
 * ```
 */
export class RPCBuilder {
  readonly #name: string
  readonly #methods = new Map<string, RpcMethod>()
  #tenants: Tenants | undefined
  #events: EventFlowSource | undefined
  #origins: string[] = []

  constructor(name: string) {
    this.#name = name
  }

  /**
   * Adds methods to the allow-list, by name.
   *
   * @throws ConfigError `INVALID_RPC_METHOD` for a name outside `[a-z][A-Za-z0-9]{0,63}`, one an object
   *   already has (`constructor`, `toString`, `then`…), a duplicate, or a value that is not a function
   */
  expose(methods: Record<string, RpcMethod>): this {
    for (const [name, fn] of Object.entries(methods)) {
      if (!METHOD.test(name) || RESERVED.has(name)) throw new ConfigError('INVALID_RPC_METHOD', `RPC method "${name}" cannot be exposed: use a lower camel case name (1-64) that no object already carries`)
      if (typeof fn !== 'function') throw new ConfigError('INVALID_RPC_METHOD', `RPC method "${name}" must be a function`)
      if (this.#methods.has(name)) throw new ConfigError('INVALID_RPC_METHOD', `RPC method "${name}" is exposed twice`)
      this.#methods.set(name, fn)
    }
    return this
  }

  /**
   * Scopes every call to the tenant its request names (host label or
   * header, as the Tenants read it): `ctx.tenant` is that tenant, checked
   * for the caller before any call of the batch runs (400 without one, 403
   * when the caller may not act in it, 404 for a tenant never made).
   *
   * @example
   * ```ts
   * RPC.create('shop').tenants(tenants).expose({ orders: async (ctx) => ctx.tenant!.use(things).noun('Order').list() }).build()
   * ```
   */
  tenants(t: Tenants): this {
    this.#tenants = t
    return this
  }

  /**
   * Adds `subscribe(patterns, callback, { offset? })` to WebSocket sessions
   * (`GET /rpc/ws`): the client's `callback` is called with every event of
   * this Things store (the tenant's copy when tenant-scoped) whose type
   * matches a pattern (`Order.created`, `*.created`, `Order.*`), one call at
   * a time in offset order, from now or after `offset`. It answers a handle
   * with `unsubscribe()`. At most 32 subscriptions per connection.
   *
   * @example
   * ```ts
   * RPC.create('shop').events(things).expose({ ping: async () => 'pong' }).build()
   * // client: const api = newWebSocketRpcSession('wss://shop.example.com/rpc/ws')
   * //         const sub = await api.subscribe(['Order.created'], (e) => console.log(e.offset, e.data))
   * ```
   */
  events(source: EventFlowSource): this {
    if (typeof source !== 'object' || source === null || !('events' in source)) throw new ConfigError('INVALID_RPC_EVENTS', `RPC "${this.#name}": events() takes a Things store`)
    this.#events = source
    return this
  }

  /**
   * Pages of other origins allowed to open `GET /rpc/ws` (default: none but
   * this host's own; requests without an `Origin` header, from programs, are
   * not browsers and pass).
   *
   * @example `.allowOrigins(['https://app.example.com'])`
   */
  allowOrigins(origins: string[]): this {
    for (const o of origins) {
      if (typeof o !== 'string' || !/^https?:\/\/[^/]+$/.test(o)) throw new ConfigError('INVALID_RPC_ORIGIN', `RPC "${this.#name}": origin ${JSON.stringify(o)} is not scheme://host[:port]`)
    }
    this.#origins = [...origins]
    return this
  }

  build(): RPC {
    if (this.#methods.size === 0) throw new ConfigError('INVALID_RPC_METHOD', `RPC "${this.#name}" exposes no method`)
    registerPrimitive({ primitive: 'rpc', name: this.#name, infrastructure: ['none'], config: { methods: [...this.#methods.keys()] } })
    if (this.#events && this.#methods.has('subscribe')) throw new ConfigError('INVALID_RPC_METHOD', `RPC "${this.#name}": "subscribe" is taken by events(); name your method differently`)
    return new RPC(this.#name, this.#methods, { ...(this.#tenants ? { tenants: this.#tenants } : {}), ...(this.#events ? { events: this.#events } : {}), origins: this.#origins })
  }
}
