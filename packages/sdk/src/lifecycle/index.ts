import { ConfigError, parseDuration, registerPrimitive, type Duration } from '@onepipe/core'

/** A readiness check: resolves when healthy, throws (or rejects) when not. */
export type HealthCheckFn = () => unknown

/** A shutdown hook; receives an AbortSignal fired when the shutdown timeout is reached. */
export type ShutdownFn = (signal: AbortSignal) => unknown

/** One registered check. */
export interface HealthCheck {
  name: string
  fn: HealthCheckFn
  timeoutMs: number
}

/** One registered shutdown hook; lower priority runs first. */
export interface ShutdownHook {
  name: string
  fn: ShutdownFn
  priority: number
}

/** What `/ready` reports for one check. */
export interface CheckResult {
  name: string
  ok: boolean
  ms: number
  error?: string
}

/** What a shutdown did, hook by hook. */
export interface ShutdownReport {
  hooks: { name: string; ok: boolean; ms: number; error?: string }[]
  timedOut: boolean
}

/**
 * Health checks and graceful shutdown for `serve()`.
 *
 * @example
 * ```ts
 * const lifecycle = Lifecycle.create()
 *   .healthCheck('db', () => db.ping())
 *   .onShutdown('db', () => db.close(), 90)
 *   .timeout('20s')
 *   .build()
 * serve({ rest: [api], lifecycle })
 * ```
 */
export const Lifecycle = {
  create(): LifecycleBuilder {
    return new LifecycleBuilder()
  },
}

/** Fluent configuration for {@link LifecycleManager}. */
export class LifecycleBuilder {
  #checks: HealthCheck[] = []
  #hooks: ShutdownHook[] = []
  #timeoutMs = 30_000
  #drainMs: number | undefined

  /** Adds a readiness check; `/ready` is 503 while any check fails or exceeds `timeout`. */
  healthCheck(name: string, fn: HealthCheckFn, options: { timeout?: Duration } = {}): this {
    if (this.#checks.some((c) => c.name === name)) throw new ConfigError('DUPLICATE_HEALTH_CHECK', `Health check "${name}" is registered twice`)
    this.#checks.push({ name, fn, timeoutMs: parseDuration(options.timeout ?? '5s') })
    return this
  }

  /** Adds a shutdown hook. Lower `priority` runs first; equal priorities run together. */
  onShutdown(name: string, fn: ShutdownFn, priority = 50): this {
    this.#hooks.push({ name, fn, priority })
    return this
  }

  /**
   * The whole shutdown must end within `t` (default 30s), shared so the
   * hooks always get to run: draining HTTP (in-flight requests) takes at
   * most `drain` (default half of `t`), detaching engines at most half of
   * what is left then, and the hooks everything after that.
   *
   * @example
   * ```ts
   * Lifecycle.create().timeout('20s', { drain: '15s' }) // slow uploads; hooks keep ≥ 2.5s
   * ```
   */
  timeout(t: Duration, options: { drain?: Duration } = {}): this {
    this.#timeoutMs = parseDuration(t)
    this.#drainMs = options.drain === undefined ? undefined : parseDuration(options.drain)
    return this
  }

  build(): LifecycleManager {
    const drainMs = this.#drainMs ?? Math.floor(this.#timeoutMs / 2)
    if (drainMs > this.#timeoutMs) throw new ConfigError('LIFECYCLE_DRAIN_TOO_LONG', `The drain (${drainMs}ms) must fit in the shutdown timeout (${this.#timeoutMs}ms); the hooks run after it`)
    registerPrimitive({ primitive: 'lifecycle', name: 'lifecycle', infrastructure: ['none'], config: { checks: this.#checks.map((c) => c.name), hooks: this.#hooks.map((h) => h.name), timeoutMs: this.#timeoutMs, drainMs } })
    return new LifecycleManager([...this.#checks], [...this.#hooks], this.#timeoutMs, drainMs)
  }
}

class Overdue extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Overdue(`${what} took longer than ${ms}ms`)), ms)
    }),
  ]).finally(() => clearTimeout(t))
}

/** Runs checks and shutdown hooks; `serve()` owns one. */
export class LifecycleManager {
  readonly checks: readonly HealthCheck[]
  readonly hooks: readonly ShutdownHook[]
  /** The whole shutdown's budget. */
  readonly timeoutMs: number
  /** The most of it the HTTP drain may take (the rest is for engines and hooks). */
  readonly drainMs: number

  constructor(checks: HealthCheck[], hooks: ShutdownHook[], timeoutMs: number, drainMs = Math.floor(timeoutMs / 2)) {
    this.checks = checks
    this.hooks = hooks
    this.timeoutMs = timeoutMs
    this.drainMs = Math.min(drainMs, timeoutMs)
  }

  /** A copy with more checks/hooks (serve() adds its own for the database and cache). */
  with(extra: { checks?: HealthCheck[]; hooks?: ShutdownHook[] }): LifecycleManager {
    return new LifecycleManager([...this.checks, ...(extra.checks ?? [])], [...this.hooks, ...(extra.hooks ?? [])], this.timeoutMs, this.drainMs)
  }

  /** Runs every check in parallel, each bounded by its timeout. */
  async runChecks(): Promise<CheckResult[]> {
    return Promise.all(
      this.checks.map(async (c) => {
        const t0 = performance.now()
        try {
          await withTimeout(Promise.resolve().then(c.fn), c.timeoutMs, `check "${c.name}"`)
          return { name: c.name, ok: true, ms: Math.round(performance.now() - t0) }
        } catch (e) {
          return { name: c.name, ok: false, ms: Math.round(performance.now() - t0), error: e instanceof Error ? e.message : String(e) }
        }
      }),
    )
  }

  /**
   * Runs the hooks by ascending priority (equal priorities concurrently)
   * within `budgetMs`; a hook that throws is reported and the rest still run.
   */
  async runShutdown(budgetMs = this.timeoutMs): Promise<ShutdownReport> {
    const ac = new AbortController()
    const deadline = Date.now() + budgetMs
    const report: ShutdownReport = { hooks: [], timedOut: false }
    const groups = [...new Set(this.hooks.map((h) => h.priority))].sort((a, b) => a - b)
    let overdue = false
    for (const p of groups) {
      const left = deadline - Date.now()
      if (left <= 0) {
        report.timedOut = true
        break
      }
      const group = this.hooks.filter((h) => h.priority === p)
      const results = await Promise.all(
        group.map(async (h) => {
          const t0 = performance.now()
          try {
            await withTimeout(Promise.resolve().then(() => h.fn(ac.signal)), left, `shutdown hook "${h.name}"`)
            return { name: h.name, ok: true, ms: Math.round(performance.now() - t0) }
          } catch (e) {
            if (e instanceof Overdue) overdue = true
            return { name: h.name, ok: false, ms: Math.round(performance.now() - t0), error: e instanceof Error ? e.message : String(e) }
          }
        }),
      )
      report.hooks.push(...results)
      // A hook cut off by the budget ends the shutdown even if the timer fired
      // a hair before the wall clock reached the deadline.
      if (overdue || Date.now() >= deadline) {
        report.timedOut = true
        break
      }
    }
    ac.abort()
    return report
  }
}
