// The WebSocket side of RPC: one Cap'n Web session per connection over
// Hono's WebSocket helper, and `subscribe`, which calls a function the
// client passed for every matching event of a Things store's flow.
import { ValidationError } from '@onepipe/core'
import { RpcTarget, type RpcTransport } from 'capnweb'
import type { WSContext } from 'hono/ws'
import type { Flow } from '../flow/flow.js'
import type { Unsubscribe } from '../flow/types.js'
import { matches } from '../semantic/runner.js'
import type { Tenant, TenantTemplate } from '../tenants/tenants.js'

/** Messages a client may have sent and the session not yet read; more closes the connection (1008). */
export const MAX_QUEUED_MESSAGES = 1000
/** Subscriptions one connection may hold at once. */
export const MAX_SUBSCRIPTIONS = 32
/** Patterns of one subscription. */
const MAX_PATTERNS = 32
const PATTERN = /^(\*|[A-Z][A-Za-z0-9]{0,63})\.(\*|[a-z][A-Za-z0-9]{0,63})$/

/**
 * Cap'n Web's transport on one WebSocket: what arrives waits in a bounded
 * queue until the session reads it; a closed socket fails every read, which
 * ends the session and every call in flight.
 */
export class WsTransport implements RpcTransport {
  readonly #ws: WSContext
  readonly #queue: string[] = []
  readonly #readers: { resolve: (m: string) => void; reject: (e: unknown) => void }[] = []
  #failure: Error | undefined

  constructor(ws: WSContext) {
    this.#ws = ws
  }

  send(message: string): void {
    if (this.#ws.readyState !== 1) throw this.#failure ?? new Error('the WebSocket is closed')
    this.#ws.send(message)
  }

  receive(): Promise<string> {
    const next = this.#queue.shift()
    if (next !== undefined) return Promise.resolve(next)
    if (this.#failure) return Promise.reject(this.#failure)
    return new Promise((resolve, reject) => this.#readers.push({ resolve, reject }))
  }

  /** A message from the client. */
  deliver(message: string): void {
    const reader = this.#readers.shift()
    if (reader) return reader.resolve(message)
    if (this.#queue.length >= MAX_QUEUED_MESSAGES) {
      this.#ws.close(1008, `more than ${MAX_QUEUED_MESSAGES} messages waiting`)
      return this.closed(new Error('the client sent faster than its calls ran'))
    }
    this.#queue.push(message)
  }

  /** The socket closed (or must): every pending and later read fails. */
  closed(reason: Error): void {
    this.#failure ??= reason
    for (const r of this.#readers.splice(0)) r.reject(this.#failure)
  }

  /**
   * The session ended on an error: nearly always the client's (a message that
   * is not JSON, an unknown message, a value nested past the limit), so the
   * close is 1008 (policy violation) with the reason, not 1011 (server error).
   */
  abort(reason: unknown): void {
    const err = reason instanceof Error ? reason : new Error(String(reason))
    this.closed(err)
    // A close reason holds at most 123 bytes.
    if (this.#ws.readyState === 1) this.#ws.close(1008, Buffer.from(`RPC session ended: ${err.message}`).subarray(0, 120).toString())
  }
}

/** Where `subscribe` reads events: a Things store (a tenant's copy when the call is tenant-scoped). */
export interface EventFlowSource {
  readonly events: Flow<{ type: string }>
}

/** What `subscribe` answers: a handle whose `unsubscribe()` stops the calls. */
export class Subscription extends RpcTarget {
  readonly #stop: () => Promise<void>
  constructor(stop: () => Promise<void>) {
    super()
    this.#stop = stop
  }

  /** Stops calling the client's function; resolves once no call is in flight. */
  async unsubscribe(): Promise<void> {
    await this.#stop()
  }
}

/** The subscriptions of one WebSocket connection, stopped together when it closes. */
export class SessionSubscriptions {
  readonly #live = new Set<Unsubscribe>()

  get size(): number {
    return this.#live.size
  }

  add(u: Unsubscribe): () => Promise<void> {
    this.#live.add(u)
    return async () => {
      if (!this.#live.delete(u)) return
      await u()
    }
  }

  async stopAll(): Promise<void> {
    const all = [...this.#live]
    this.#live.clear()
    await Promise.allSettled(all.map((u) => u()))
  }
}

/** A callable stub the client passed: Cap'n Web disposes arguments after the call returns unless they are duplicated. */
interface CallbackStub {
  (event: unknown): Promise<unknown>
  dup?: () => CallbackStub
  [Symbol.dispose]?: () => void
}

function checkPatterns(patterns: unknown): { noun: string; verb: string }[] {
  const list = typeof patterns === 'string' ? [patterns] : patterns
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_PATTERNS) {
    throw new ValidationError('subscribe', [{ path: 'patterns', message: `give one "Noun.verb" pattern or a list of 1-${MAX_PATTERNS} ("Order.created", "*.created", "Order.*")` }])
  }
  return list.map((p, i) => {
    const m = typeof p === 'string' ? PATTERN.exec(p) : null
    if (!m) throw new ValidationError('subscribe', [{ path: `patterns.${i}`, message: `${JSON.stringify(p)} is not "Noun.verb" ("*" for any noun or verb)` }])
    return { noun: m[1] ?? '*', verb: m[2] ?? '*' }
  })
}

/**
 * Starts one subscription: every event of `flow` after `offset` (default:
 * from now) whose type matches one of the patterns is passed to `callback`,
 * one call at a time in offset order (the next event waits for the client to
 * answer, so a slow client slows only its own subscription). A failed call
 * (the client threw or went away) ends the subscription.
 *
 * @throws ValidationError for bad patterns or offset, or `RPC_TOO_MANY_SUBSCRIPTIONS` past 32 on one connection
 */
export async function subscribeEvents(
  subs: SessionSubscriptions,
  flow: Flow<{ type: string }>,
  patterns: unknown,
  callback: unknown,
  options: unknown,
): Promise<Subscription> {
  const wanted = checkPatterns(patterns)
  if (typeof callback !== 'function') throw new ValidationError('subscribe', [{ path: 'callback', message: 'pass a function; it is called with each event ({ offset, type, noun, verb, id, data })' }])
  const o = (options ?? {}) as { offset?: unknown }
  if (typeof options !== 'undefined' && (typeof options !== 'object' || options === null)) throw new ValidationError('subscribe', [{ path: 'options', message: 'must be { offset?: number }' }])
  if (o.offset !== undefined && (typeof o.offset !== 'number' || !Number.isSafeInteger(o.offset) || o.offset < 0)) throw new ValidationError('subscribe', [{ path: 'options.offset', message: 'must be a whole number ≥ 0 (the last offset seen)' }])
  if (subs.size >= MAX_SUBSCRIPTIONS) throw new ValidationError('subscribe', [{ path: '', message: `at most ${MAX_SUBSCRIPTIONS} subscriptions per connection; unsubscribe one first` }], { code: 'RPC_TOO_MANY_SUBSCRIPTIONS' })
  const stub = callback as CallbackStub
  const cb = stub.dup ? stub.dup() : stub
  // Set once the subscription is registered; a failed call may need it before then.
  const handle: { stop?: () => Promise<void> } = {}
  let failed = false
  const u = flow.subscribe(
    async (e) => {
      if (failed || !wanted.some((p) => matches(p, e.data.type))) return
      try {
        await cb({ offset: e.offset, ...(e.data as object) })
      } catch {
        // The client threw or is gone: no more calls for this subscription.
        failed = true
        void handle.stop?.()
      }
    },
    typeof o.offset === 'number' ? { offset: o.offset } : {},
  )
  const stop = subs.add(
    Object.assign(
      async () => {
        await u()
        cb[Symbol.dispose]?.()
      },
      { ready: u.ready },
    ),
  )
  handle.stop = stop
  await u.ready
  return new Subscription(stop)
}

/** The flow a call subscribes to: the tenant's copy of the source when the call is tenant-scoped. */
export function flowFor(source: EventFlowSource, tenant: Tenant | undefined): Flow<{ type: string }> {
  if (!tenant) return source.events
  return (tenant.use(source as unknown as TenantTemplate) as unknown as EventFlowSource).events
}
