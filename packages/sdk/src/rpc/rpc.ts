import { ConfigError, registerPrimitive, stderrLogger, type Component, type RuntimeContext } from '@onepipe/core'
import { newHttpBatchRpcResponse, RpcTarget } from 'capnweb'
import type { Context, Hono } from 'hono'
import { errorResponse, readBodyText, requestIdOf, respondError } from '../http/index.js'
import type { AuthUser } from '../rest/auth.js'
import type { Tenant, Tenants } from '../tenants/tenants.js'

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
  requestId: string
  signal: AbortSignal
}

/** An exposed method: the call context, then the caller's arguments (JSON values, or the results of earlier calls of the same batch). */
export type RpcMethod = (ctx: RpcCallContext, ...args: never[]) => unknown

/** The route of the HTTP batch: one request carries a chain of calls, each may use the results of the earlier ones. */
export const RPC_PIPELINE_PATH = '/rpc/pipeline'

/** A batch body larger than this is refused with 413 before anything runs. */
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
  readonly #tenants: Tenants | undefined

  /** @internal Use {@link RPC.create}. */
  constructor(name: string, methods: Map<string, RpcMethod>, tenants?: Tenants) {
    this.name = name
    this.#tenants = tenants
    this.methods = [...methods.keys()]
    const ctxOf = new WeakMap<object, RpcCallContext>()
    class Target extends RpcTarget {
      constructor(ctx: RpcCallContext) {
        super()
        ctxOf.set(this, ctx)
      }
    }
    for (const [m, fn] of methods) {
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
    return newHttpBatchRpcResponse(req, new this.#Target(ctx), { limits: { maxDepth: 64 } })
  }

  /** Mounts `POST /rpc/pipeline` (serve() guards `/rpc/*`). */
  routes(app: unknown, rt?: RuntimeContext): void {
    const logger = rt?.logger ?? stderrLogger
    const signal = rt?.signal ?? new AbortController().signal
    ;(app as Hono).post(RPC_PIPELINE_PATH, async (c: Context) => {
      try {
        const text = await readBodyText(c, MAX_RPC_BATCH_BYTES)
        if (text.trim() === '') return errorResponse(400, 'VALIDATION_FAILED', 'The RPC batch is empty: send Cap\'n Web batch messages, one per line', requestIdOf(c))
        const user = c.get('user' as never) as AuthUser | undefined
        // The tenant is checked before any call runs: a batch for a tenant the caller may not enter runs nothing.
        const tenant = this.#tenants ? await this.#tenants.fromRequest(c.req.raw, user) : undefined
        return await this.handle(new Request(c.req.url, { method: 'POST', body: text }), { user, requestId: requestIdOf(c), signal, ...(tenant ? { tenant } : {}) })
      } catch (e) {
        return respondError(c, e, logger)
      }
    })
  }
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

  build(): RPC {
    if (this.#methods.size === 0) throw new ConfigError('INVALID_RPC_METHOD', `RPC "${this.#name}" exposes no method`)
    registerPrimitive({ primitive: 'rpc', name: this.#name, infrastructure: ['none'], config: { methods: [...this.#methods.keys()] } })
    return new RPC(this.#name, this.#methods, this.#tenants)
  }
}
