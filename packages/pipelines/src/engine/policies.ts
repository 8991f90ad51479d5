// Per-handler policies enforced at claim time across replicas: a
// concurrency limit, a token bucket and a circuit breaker. PostgreSQL holds
// each policy and its state (one row per application and handler); a claim
// of a limited handler locks that row, so every replica's claims of it take
// turns, and a handler without a policy never pays for any of this.
import type { Database, Duration, Logger, Queryable } from '@onepipe/core'
import { notifyReady, READY_CHANNEL } from '@onepipe/sdk'
import { claimStagesById } from '../dispatch/rabbitmq-sql.js'
import * as q from './policies-sql.js'
import type { LockedPolicy, PolicyRow, PolicySettings } from './policies-sql.js'
import type { ClaimedRow } from './sql.js'

export type { PolicySettings } from './policies-sql.js'

/** The application id whose policy row applies to every application (an application's own row takes precedence). */
export const ALL_APPLICATIONS = '*'

/**
 * A handler's policy as set with `ControlPlane.create().handlerPolicy()`
 * or `PUT /handlers/{name}/policy`. Each limit is per application and
 * holds across every replica; leave one out (or null) to turn it off.
 *
 * - `concurrency`: the most stages of the handler Running at once.
 * - `rate`: a token bucket, `perSecond` jobs handed out per second on
 *   average, up to `burst` (default `ceil(perSecond)`) at once.
 * - `breaker`: when at least `minCalls` acks within `window` failed at a
 *   share of `failureRate` (0-1] or more (lease expiries and timeouts count
 *   as failures), no job of the handler is handed out for `cooldown`; then
 *   one probe is, once nothing of the handler is running: its success
 *   closes the breaker, its failure opens it for another `cooldown`.
 *
 * @example
 * ```ts
 * { concurrency: 4, rate: { perSecond: 10, burst: 10 }, breaker: { failureRate: 0.5, minCalls: 20, window: '1m', cooldown: '30s' } }
 * ```
 */
export interface HandlerPolicy {
  concurrency?: number | null | undefined
  rate?: { perSecond: number; burst?: number | undefined } | null | undefined
  breaker?: { failureRate: number; minCalls: number; window: Duration; cooldown: Duration } | null | undefined
}

/**
 * A policy as the API answers it: durations in ms, null for a limit that
 * is off.
 *
 * @example
 * ```ts
 * { concurrency: 4, rate: { perSecond: 10, burst: 10 }, breaker: { failureRate: 0.5, minCalls: 20, window: 60000, cooldown: 30000 } }
 * ```
 */
export interface HandlerPolicyView {
  concurrency: number | null
  rate: { perSecond: number; burst: number } | null
  breaker: { failureRate: number; minCalls: number; window: number; cooldown: number } | null
}

/**
 * What `GET /handlers/{name}/policy` answers: the policy in force for the
 * application (`appliesTo: 'all'` when it is the all-applications one),
 * and its state now. `policy` is null when the handler has none.
 *
 * @example
 * ```ts
 * { handler: 'vision.analyze', appliesTo: 'application', policy: { concurrency: 4, rate: null, breaker: null },
 *   state: { running: 2, tokens: null, breaker: 'closed', breakerUntil: null, windowCalls: 0, windowFailures: 0 } }
 * ```
 */
export interface HandlerPolicyAnswer {
  handler: string
  appliesTo: 'application' | 'all' | null
  policy: HandlerPolicyView | null
  state: { running: number; tokens: number | null; breaker: string; breakerUntil: string | null; windowCalls: number; windowFailures: number } | null
}

/** What a policy limits (from the per-process cache). */
interface Flags {
  concurrency: boolean
  rate: boolean
  breaker: boolean
}

/** What one claim may take of one limited handler, decided under its lock. */
interface Allowance {
  cap: number
  /** The bucket before this claim (null: no rate limit). */
  tokens: number | null
  rate: number | null
  /** The breaker is open or half-open and this claim may hand out its probe. */
  probe: boolean
  /** The breaker stays open this much longer (ms). */
  openForMs: number | null
  nowMs: number
}

/**
 * Normalizes a policy whose durations are already ms (the API's schema
 * parsed it) to what is stored.
 *
 * @example
 * ```ts
 * toSettings({ concurrency: 4 }) // { maxConcurrency: 4, ratePerSecond: null, … }
 * ```
 */
export function toSettings(p: { concurrency?: number | null | undefined; rate?: { perSecond: number; burst?: number | undefined } | null | undefined; breaker?: { failureRate: number; minCalls: number; window: number; cooldown: number } | null | undefined }): PolicySettings {
  return {
    maxConcurrency: p.concurrency ?? null,
    ratePerSecond: p.rate?.perSecond ?? null,
    burst: p.rate ? (p.rate.burst ?? Math.max(1, Math.ceil(p.rate.perSecond))) : null,
    breakerThreshold: p.breaker?.failureRate ?? null,
    breakerMinCalls: p.breaker?.minCalls ?? null,
    breakerWindowMs: p.breaker?.window ?? null,
    breakerCooldownMs: p.breaker?.cooldown ?? null,
  }
}

const isEmpty = (s: PolicySettings): boolean => s.maxConcurrency === null && s.ratePerSecond === null && s.breakerThreshold === null

function view(r: PolicyRow): HandlerPolicyView {
  const rate = r.rate_per_second === null ? null : Number(r.rate_per_second)
  return {
    concurrency: r.max_concurrency,
    rate: rate === null ? null : { perSecond: rate, burst: r.burst ?? Math.max(1, Math.ceil(rate)) },
    breaker:
      r.breaker_threshold === null
        ? null
        : { failureRate: Number(r.breaker_threshold), minCalls: r.breaker_min_calls ?? 1, window: r.breaker_window_ms ?? 0, cooldown: r.breaker_cooldown_ms ?? 0 },
  }
}

/**
 * Decides what a claim may take of one handler whose policy row it holds
 * locked, with `running` of its stages Running now.
 */
function allow(row: LockedPolicy, running: number, want: number): Allowance {
  const now = row.now_ms
  let cap = want
  if (row.max_concurrency !== null) cap = Math.min(cap, Math.max(0, row.max_concurrency - running))
  let tokens: number | null = null
  const rate = row.rate_per_second !== null && row.rate_per_second > 0 ? row.rate_per_second : null
  if (rate !== null) {
    const burst = row.burst ?? Math.max(1, Math.ceil(rate))
    const elapsed = row.tokens_at_ms === null ? 0 : Math.max(0, now - row.tokens_at_ms)
    tokens = row.tokens === null ? burst : Math.min(burst, row.tokens + (elapsed / 1000) * rate)
    // A hair of slack so 0.9999999 tokens (float arithmetic of a refill) counts as the token it is.
    cap = Math.min(cap, Math.floor(tokens + 1e-9))
  }
  let probe = false
  let openForMs: number | null = null
  if (row.breaker_threshold !== null && row.breaker_state !== 'closed') {
    if (row.breaker_state === 'open' && row.breaker_until_ms !== null && row.breaker_until_ms > now) {
      cap = 0
      openForMs = row.breaker_until_ms - now
    } else {
      // One probe, and only while nothing of the handler runs: a straggler handed out before the
      // breaker opened must not be taken for the probe's verdict.
      probe = true
      cap = running === 0 ? Math.min(cap, 1) : 0
    }
  }
  return { cap, tokens, rate, probe, openForMs, nowMs: now }
}

/**
 * The policies of one control plane process: a cache of which
 * (application, handler) pairs have one (refreshed by every watchdog pass
 * and at once on a local change), the claim of limited handlers, and the
 * breaker's statistics taken from acks.
 *
 * @example
 * ```ts
 * const policies = new HandlerPolicies(db, { log })
 * await policies.set('*', 'vision.analyze', toSettings({ concurrency: 4 }))
 * const engine = new StageEngine(db, { leaseMs: 30_000, log, policies })
 * ```
 */
export class HandlerPolicies {
  readonly #db: Database
  readonly #log: Logger
  readonly #ready: string
  /** appId → handler → what its row limits (own rows and inherited copies). */
  #own = new Map<string, Map<string, Flags>>()
  /** handler → what the all-applications row limits. */
  #all = new Map<string, Flags>()
  readonly #wakes = new Map<string, { at: number; timer: NodeJS.Timeout }>()

  constructor(db: Database, o: { log: Logger }) {
    this.#db = db
    this.#log = o.log
    this.#ready = db.channel(READY_CHANNEL)
  }

  /**
   * Reloads which handlers have policies (every replica's changes show
   * within one watchdog pass).
   *
   * @throws DatabaseError when the read fails (the cache is kept)
   */
  async refresh(db: Queryable = this.#db): Promise<void> {
    const own = new Map<string, Map<string, Flags>>()
    const all = new Map<string, Flags>()
    for (const r of await q.listPolicyFlags(db)) {
      if (!r.concurrency && !r.rate && !r.breaker) continue
      const f = { concurrency: r.concurrency, rate: r.rate, breaker: r.breaker }
      if (r.app_id === ALL_APPLICATIONS) all.set(r.handler, f)
      else {
        let m = own.get(r.app_id)
        if (!m) own.set(r.app_id, (m = new Map<string, Flags>()))
        m.set(r.handler, f)
      }
    }
    this.#own = own
    this.#all = all
  }

  #flags(appId: string, handler: string): Flags | undefined {
    return this.#own.get(appId)?.get(handler) ?? this.#all.get(handler)
  }

  /** Whether any of `handlers` has a policy for `appId` (else the claim takes the one-statement path). */
  limits(appId: string, handlers: readonly string[]): boolean {
    if (this.#all.size === 0 && !this.#own.has(appId)) return false
    return handlers.some((h) => this.#flags(appId, h) !== undefined)
  }

  /** Whether `appId` has any limited handler (a claim by stage id must then look at the stages' handlers). */
  limitsAny(appId: string): boolean {
    return this.#all.size > 0 || this.#own.has(appId)
  }

  /**
   * Sets (or, with an empty policy or null, removes) the policy of
   * `handler` for `appId`, or for every application with
   * {@link ALL_APPLICATIONS}. This process enforces it at once, the other
   * replicas from their next watchdog pass; pulls parked on the handler
   * look again, since the limit may have loosened.
   *
   * @throws DatabaseError when the write fails
   */
  async set(appId: string, handler: string, settings: PolicySettings | null): Promise<void> {
    if (settings === null || isEmpty(settings)) await q.deletePolicy(this.#db, appId, handler)
    else await q.upsertPolicy(this.#db, appId, handler, settings)
    const apps = appId === ALL_APPLICATIONS ? [...this.#own].filter(([, m]) => m.has(handler)).map(([a]) => a) : [appId]
    await this.refresh()
    for (const a of apps) await notifyReady(this.#db, this.#ready, a, [handler])
  }

  /**
   * The policy in force for `handler` of `appId` and its state.
   *
   * @throws DatabaseError when the read fails
   */
  async get(appId: string, handler: string): Promise<HandlerPolicyAnswer> {
    const [first] = await q.readPolicy(this.#db, appId, handler)
    if (!first) return { handler, appliesTo: null, policy: null, state: null }
    const r = first.row
    const star = r.app_id === ALL_APPLICATIONS
    let tokens: number | null = null
    if (r.rate_per_second !== null && !star) {
      const rate = Number(r.rate_per_second)
      const burst = r.burst ?? Math.max(1, Math.ceil(rate))
      const at = r.tokens_at
      tokens = r.tokens === null ? burst : Math.min(burst, Number(r.tokens) + (at ? Math.max(0, Date.now() - new Date(at).getTime()) / 1000 : 0) * rate)
    }
    return {
      handler,
      appliesTo: star || r.inherited ? 'all' : 'application',
      policy: view(r),
      state: star
        ? null
        : {
            running: first.running,
            tokens,
            breaker: r.breaker_state,
            breakerUntil: r.breaker_until ? new Date(r.breaker_until).toISOString() : null,
            windowCalls: r.window_calls,
            windowFailures: r.window_failures,
          },
    }
  }

  /**
   * The claim when some of `handlers` are limited, inside the caller's
   * transaction: up to `max` of the oldest ready stages, no more of each
   * limited handler than its policy allows now.
   *
   * @throws DatabaseError (the caller's transaction retries deadlocks)
   */
  async claim(tx: Queryable, c: { appId: string; handlers: readonly string[]; max: number; workerId: string | null; leaseMs: number }): Promise<ClaimedRow[]> {
    const allowed = await this.#allow(tx, c.appId, c.handlers, c.max)
    const caps = c.handlers.map((h) => allowed.get(h)?.cap ?? c.max)
    const rows = caps.some((n) => n > 0) ? await q.claimCapped(tx, c.appId, c.handlers, caps, c.max, c.workerId, c.leaseMs) : []
    await this.#spend(tx, c.appId, allowed, rows)
    return rows
  }

  /**
   * The claim by stage id (RabbitMQ dispatch) when the application has
   * limited handlers: the named stages of a limited handler beyond what its
   * policy allows now stay Pending (a later pull claims them).
   *
   * @throws DatabaseError (the caller's transaction retries deadlocks)
   */
  async claimByIds(tx: Queryable, c: { appId: string; stageIds: readonly string[]; workerId: string | null; leaseMs: number }): Promise<ClaimedRow[]> {
    const pending = await q.pendingHandlers(tx, c.appId, c.stageIds)
    const allowed = await this.#allow(tx, c.appId, [...new Set(pending.map((p) => p.handler))], pending.length)
    const taken = new Map<string, number>()
    const ids = pending
      .filter((p) => {
        const n = taken.get(p.handler) ?? 0
        if (n >= (allowed.get(p.handler)?.cap ?? Infinity)) return false
        taken.set(p.handler, n + 1)
        return true
      })
      .map((p) => p.id)
    const rows = await claimStagesById(tx, c.appId, ids, c.workerId, c.leaseMs)
    await this.#spend(tx, c.appId, allowed, rows)
    return rows
  }

  /** Locks the limited ones of `handlers` (handler order), counts their running stages, and decides each one's cap. */
  async #allow(tx: Queryable, appId: string, handlers: readonly string[], want: number): Promise<Map<string, Allowance>> {
    const limited = handlers.filter((h) => this.#flags(appId, h) !== undefined)
    const own = this.#own.get(appId)
    const inherit = limited.filter((h) => !own?.has(h))
    if (inherit.length > 0) await q.inheritPolicies(tx, appId, inherit)
    const locked = await q.lockPolicies(tx, appId, limited)
    const counted = locked.filter((r) => r.max_concurrency !== null || r.breaker_threshold !== null).map((r) => r.handler)
    const running = counted.length > 0 ? await q.countRunning(tx, appId, counted) : new Map<string, number>()
    return new Map(locked.map((r) => [r.handler, allow(r, running.get(r.handler) ?? 0, want)]))
  }

  /** Takes the claimed stages' tokens, marks a handed-out probe, and plans the wake-ups of pulls held back by time. */
  async #spend(tx: Queryable, appId: string, allowed: Map<string, Allowance>, rows: readonly ClaimedRow[]): Promise<void> {
    const got = new Map<string, number>()
    for (const r of rows) got.set(r.handler, (got.get(r.handler) ?? 0) + 1)
    const spent: { handler: string; tokens: number | null; atMs: number; probe: boolean }[] = []
    for (const [handler, a] of allowed) {
      const n = got.get(handler) ?? 0
      const left = a.tokens === null ? null : a.tokens - n
      if (n > 0 && (left !== null || a.probe)) spent.push({ handler, tokens: left, atMs: a.nowMs, probe: a.probe })
      // Held back by the cap (more may be waiting): a pull parked on it must look again when capacity returns by itself.
      if (n < a.cap) continue
      if (a.openForMs !== null) this.#wakeLater(appId, handler, a.openForMs)
      else if (left !== null && a.rate !== null && left < 1) this.#wakeLater(appId, handler, ((1 - left) / a.rate) * 1000)
    }
    await q.spendPolicies(tx, appId, spent)
  }

  /**
   * Inside an ack's transaction: the breaker of each limited handler counts
   * the acks (completed: success; failed, timed out, lease lost: failure;
   * released: neither), and the pulls parked on it are woken, since a
   * running stage ended. Handlers without a policy cost nothing here.
   *
   * @throws DatabaseError (the ack's transaction retries deadlocks)
   */
  async afterAcks(tx: Queryable, appId: string, acks: readonly { handler: string; status: 'completed' | 'failed' | 'released' }[]): Promise<void> {
    if (!this.limitsAny(appId)) return
    const by = new Map<string, { calls: number; failures: number; breaker: boolean }>()
    for (const a of acks) {
      const f = this.#flags(appId, a.handler)
      if (!f || (!f.concurrency && !f.breaker)) continue
      const e = by.get(a.handler) ?? { calls: 0, failures: 0, breaker: f.breaker }
      if (a.status !== 'released') e.calls++
      if (a.status === 'failed') e.failures++
      by.set(a.handler, e)
    }
    // Handler order, as claims lock them: two batches never wait on each other in a circle.
    for (const h of [...by.keys()].sort()) {
      const e = by.get(h)!
      await q.recordAcks(tx, appId, h, e.breaker ? e.calls : 0, e.breaker ? e.failures : 0, this.#ready)
    }
  }

  /** Wakes the pulls parked on `handler` of `appId` in every replica in `ms` (a token refilled, a cooldown ended). */
  #wakeLater(appId: string, handler: string, ms: number): void {
    const key = `${appId}\t${handler}`
    const at = Date.now() + Math.max(1, Math.ceil(ms))
    const prev = this.#wakes.get(key)
    if (prev && prev.at <= at) return
    if (prev) clearTimeout(prev.timer)
    const timer = setTimeout(() => {
      this.#wakes.delete(key)
      notifyReady(this.#db, this.#ready, appId, [handler]).catch((err: unknown) => this.#log.warn({ err, handler }, 'pipelines: waking pulls held back by a policy failed; the periodic re-check will'))
    }, at - Date.now())
    timer.unref()
    this.#wakes.set(key, { at, timer })
  }

  /** Stops the pending wake-ups (at shutdown). */
  close(): void {
    for (const w of this.#wakes.values()) clearTimeout(w.timer)
    this.#wakes.clear()
  }
}
