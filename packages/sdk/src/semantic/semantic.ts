import { ConfigError, newInstanceId, registerPrimitive, stderrLogger, type Component, type Database, type Logger, type RuntimeContext } from '@onepipe/core'
import { Cron } from '../cron/cron.js'
import type { Flow } from '../flow/flow.js'
import type { Tenant, TenantTemplate } from '../tenants/tenants.js'
import { Workflow } from '../workflow/workflow.js'
import { handlerContext, type HandlerContext, type SemanticEvent } from './context.js'
import { release, step, type RunnerDeps, type StoredEvent } from './runner.js'
import { dayAt, everyN, parseTime, timeOfProperty } from './schedule.js'

/** Where events come from and go to: a Things store (its event flow and `send`). */
export interface EventSource {
  readonly events: Flow<StoredEvent>
  send(type: string, data: Record<string, unknown>, o?: { id?: string }): Promise<unknown>
}

/** A `$.on` handler: the event, then the context for durable actions. */
export type OnHandler = (event: SemanticEvent, $: HandlerContext) => unknown
/** A `$.every` / `$.at` handler. */
export type ScheduledHandler = ($: HandlerContext & { scheduledTime: Date }) => unknown
/** Options of a registration: its name (default derived from what it listens to and its place among same ones). */
export interface HandlerOptions {
  name?: string
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
const NOUN = /^(\*|[A-Z][A-Za-z0-9]{0,63})$/
const VERB = /^(\*|[a-z][A-Za-z0-9]{0,63})$/

interface OnReg {
  name: string
  pattern: { noun: string; verb: string }
  workflow: Workflow<SemanticEvent, unknown>
}

/** A registration as written, kept so that a tenant's copy builds the same handlers on its own source. */
type Registration =
  | { kind: 'on'; name: string; noun: string; verb: string; h: OnHandler }
  | { kind: 'cron'; name: string; expr: string; h: ScheduledHandler; timezone: string | undefined }
  | { kind: 'at'; name: string; date: Date; h: ScheduledHandler }

/**
 * The semantic layer's `$` (docs/semantic.md): `$.on.Noun.verb(h)` runs a
 * durable handler for every matching event of a Things store (wildcards
 * `$.on['*'].created`, `$.on.Order['*']`), `$.every…(h)` on a schedule run
 * by the Cron engine, `$.at(date)(h)` once, `$.send` emits an event. Each
 * handled event is a workflow run with an id derived from the handler and
 * the event, so `$.do` steps are recorded and never repeated on replay.
 * Pass it to `serve({ components: [things, $] })`.
 *
 * @example
 * ```ts
 * const $ = Semantic.create('shop').source(things).build()
 * $.on.Order.created(async (order, $) => { await $.do(() => mail(order.data), { stepId: 'mail' }) })
 * $.every.Monday.at9am(async () => report())
 * $.every(5).minutes(async () => sweep())
 * ```
 */
export class Semantic implements Component {
  readonly kind = 'semantic'
  readonly name: string
  readonly #source: EventSource
  readonly #startAt: 'head' | 'start'
  readonly #on: OnReg[] = []
  readonly #crons: Cron[] = []
  readonly #once: { workflow: Workflow<{ at: string }, unknown>; at: Date }[] = []
  readonly #ticks: Workflow<{ at: string }, unknown>[] = []
  readonly #names = new Set<string>()
  readonly #registrations: Registration[] = []
  #rt: RuntimeContext | undefined
  #log: Logger = stderrLogger
  #ac = new AbortController()
  #loops: Promise<void>[] = []
  #deps: RunnerDeps[] = []
  #owner = newInstanceId()

  /** @internal Use {@link Semantic.create}. */
  constructor(name: string, source: EventSource, startAt: 'head' | 'start') {
    this.name = name
    this.#source = source
    this.#startAt = startAt
  }

  /**
   * Starts a builder.
   *
   * @throws ConfigError `INVALID_NAME` for a name outside `[A-Za-z0-9_.-]{1,64}`
   * @example
   * ```ts
   * const $ = Semantic.create('shop').source(things).build()
   * ```
   */
  static create(name: string): SemanticBuilder {
    return new SemanticBuilder(name)
  }

  #claim(name: string): string {
    if (!NAME.test(name)) throw new ConfigError('INVALID_NAME', `Handler name "${name}" is invalid: 1-64 letters, digits, ".", "_" or "-"`)
    if (this.#names.has(name)) throw new ConfigError('DUPLICATE_HANDLER', `A handler named "${name}" is registered already in "${this.name}"`)
    if (this.#rt) throw new ConfigError('SEMANTIC_STARTED', `Register handlers before serve() starts "${this.name}"`)
    this.#names.add(name)
    return name
  }

  #auto(base: string): string {
    let i = 0
    while (this.#names.has(`${base}.${i}`)) i++
    return `${base}.${i}`
  }

  /**
   * `$.on.Noun.verb(handler, { name? })`, with `*` for any noun or verb; also
   * `$.on('Noun.verb', handler)` (the same, and typed without index
   * access for code compiled with `noUncheckedIndexedAccess`).
   */
  readonly on: On = new Proxy(((type: string, h: OnHandler, o?: HandlerOptions) => {
    const [noun = '', verb = '', ...rest] = String(type).split('.')
    if (rest.length > 0) throw new ConfigError('INVALID_EVENT', `$.on("${type}"): write "Noun.verb"`)
    return this.#addOn(noun, verb, h, o ?? {})
  }) as On, {
    get: (_, noun: string | symbol) =>
      new Proxy({}, {
        get: (__, verb: string | symbol) => (h: OnHandler, o: HandlerOptions = {}) => this.#addOn(String(noun), String(verb), h, o),
      }),
  })

  #addOn(noun: string, verb: string, h: OnHandler, o: HandlerOptions): () => void {
    if (!NOUN.test(noun) || !VERB.test(verb)) throw new ConfigError('INVALID_EVENT', `$.on.${noun}.${verb}: a noun is "*" or capitalized (Order), a verb "*" or lower camel case (created)`)
    if (typeof h !== 'function') throw new ConfigError('INVALID_HANDLER', `$.on.${noun}.${verb} needs a function`)
    const name = this.#claim(o.name ?? this.#auto(`${noun === '*' ? 'any' : noun}.${verb === '*' ? 'any' : verb}`))
    this.#register({ kind: 'on', name, noun, verb, h })
    return () => undefined
  }

  /** Builds the workflows (and cron jobs) of one registration on this instance's source. */
  #register(r: Registration): void {
    this.#registrations.push(r)
    if (r.kind === 'on') this.#buildOn(r.name, r.noun, r.verb, r.h)
    else if (r.kind === 'cron') this.#buildCron(r.name, r.expr, r.h, r.timezone)
    else this.#buildAt(r.name, r.date, r.h)
  }

  #buildOn(name: string, noun: string, verb: string, h: OnHandler): void {
    const source = this.#source
    const workflow = Workflow.create(`on.${this.name}.${name}`)
      .define(async (ctx, ev) => h(ev as SemanticEvent, handlerContext(ctx, (t, d, o) => source.send(t, d, o))))
      .build() as Workflow<SemanticEvent, unknown>
    this.#on.push({ name, pattern: { noun, verb }, workflow })
  }

  #addCron(expr: string, h: ScheduledHandler, o: HandlerOptions, base: string, timezone?: string): void {
    const name = this.#claim(o.name ?? this.#auto(base))
    this.#register({ kind: 'cron', name, expr, h, timezone })
  }

  #buildCron(name: string, expr: string, h: ScheduledHandler, timezone: string | undefined): void {
    const source = this.#source
    const wf = Workflow.create(`every.${this.name}.${name}`)
      .define(async (ctx, tick) => h(Object.assign(handlerContext(ctx, (t, d, o) => source.send(t, d, o)), { scheduledTime: new Date((tick as { at: string }).at) })))
      .build() as Workflow<{ at: string }, unknown>
    // The tick runs as a workflow run named after the tick: `$.do` inside it is durable as in `$.on`.
    let c = Cron.create(`every.${this.name}.${name}`).schedule(expr).handler(async (t) => {
      const id = `every:${this.name}:${name}:${t.scheduledTime.toISOString()}`
      await wf.start({ at: t.scheduledTime.toISOString() }, { workflowId: id })
      return wf.result(id)
    })
    if (timezone) c = c.timezone(timezone)
    this.#crons.push(c.build())
    this.#ticks.push(wf)
  }

  /**
   * `$.every.Monday.at9am(h)`, `$.every.day.at('6pm')(h)`, `$.every.weekday.at('9:30am')(h)`,
   * `$.every.hour(h)`, `$.every.minute(h)`, `$.every(5).minutes(h)`, `$.every(10).seconds(h)`.
   * Invalid words and times throw ConfigError at registration.
   */
  get every(): Every {
    const fn = ((n: number) => {
      if (typeof n !== 'number') throw new ConfigError('INVALID_SCHEDULE', `$.every(${JSON.stringify(n) ?? ''}): give a number and a unit, e.g. $.every(5).minutes(h), or a word: $.every.hour(h), $.every.day.at('6pm')(h)`)
      return new Proxy({}, {
        get: (_, unit: string | symbol) => (h: ScheduledHandler, o: HandlerOptions = {}) => this.#addCron(everyN(n, String(unit)), h, o, `every-${n}-${String(unit)}`),
      })
    }) as Every
    return new Proxy(fn, {
      get: (_, word: string | symbol) => {
        const w = String(word)
        if (w === 'hour' || w === 'minute' || w === 'second') return (h: ScheduledHandler, o: HandlerOptions = {}) => this.#addCron(everyN(1, w), h, o, `every-${w}`)
        return new Proxy({}, {
          get: (__, prop: string | symbol) => {
            const p = String(prop)
            if (p === 'at') return (time: string, tz?: string) => { const expr = dayAt(w, parseTime(time)); return (h: ScheduledHandler, o: HandlerOptions = {}) => this.#addCron(expr, h, o, `${w}-${time.replace(/[^A-Za-z0-9]/g, '')}`, tz) }
            if (p.startsWith('at')) { const expr = dayAt(w, timeOfProperty(p)); return (h: ScheduledHandler, o: HandlerOptions = {}) => this.#addCron(expr, h, o, `${w}-${p.slice(2)}`) }
            throw new ConfigError('INVALID_SCHEDULE', `$.every.${w}.${p}: write .at('9am') or .at9am`)
          },
        })
      },
    })
  }

  /** `$.at(date)(h)`: once at `date`, across every instance (a workflow run that sleeps until then). */
  at(date: Date): (h: ScheduledHandler, o?: HandlerOptions) => void {
    if (!(date instanceof Date) || Number.isNaN(date.getTime())) throw new ConfigError('INVALID_SCHEDULE', '$.at needs a valid Date')
    return (h, o = {}) => {
      const name = this.#claim(o.name ?? this.#auto(`at-${date.getTime()}`))
      this.#register({ kind: 'at', name, date, h })
    }
  }

  #buildAt(name: string, date: Date, h: ScheduledHandler): void {
    const source = this.#source
    const wf = Workflow.create(`at.${this.name}.${name}`)
      .define(async (ctx, input) => {
        const at = new Date((input as { at: string }).at)
        await ctx.sleepUntil(at)
        return h(Object.assign(handlerContext(ctx, (t, d, o) => source.send(t, d, o)), { scheduledTime: at }))
      })
      .build() as Workflow<{ at: string }, unknown>
    this.#once.push({ workflow: wf, at: date })
  }

  /**
   * This layer's copy for one tenant (called by Tenants): the same handlers
   * and schedules, following the tenant's copy of the source, their
   * workflows, cursors and cron jobs in the tenant's schema.
   *
   * @throws ConfigError `TENANTS_NOT_SCOPED` when the source (a Things) is not scoped to the tenants too
   */
  forTenant(tenant: Tenant): Semantic {
    const template = this.#source as Partial<TenantTemplate>
    if (typeof template.forTenant !== 'function') throw new ConfigError('TENANTS_NOT_SCOPED', `Semantic "${this.name}" follows a source that cannot be scoped to tenants: give it a Things store`)
    const source = tenant.use(template as TenantTemplate) as unknown as EventSource
    const copy = new Semantic(this.name, source, this.#startAt)
    for (const r of this.#registrations) {
      copy.#names.add(r.name)
      copy.#register(r)
    }
    return copy
  }

  /** Appends a custom `Noun.verb` event to the source (`id`: the thing it is about). */
  send(type: string, data: Record<string, unknown>, o?: { id?: string }): Promise<unknown> {
    return this.#source.send(type, data, o)
  }

  /** @internal The workflows and cron jobs behind the handlers (serve() attaches them with this component). */
  get parts(): Component[] {
    return [...this.#on.map((r) => r.workflow), ...this.#ticks, ...this.#once.map((o) => o.workflow), ...this.#crons]
  }

  /** The handlers' workflow and cron routes (runs visible in the dashboard), called by serve(). */
  routes(app: unknown, rt: RuntimeContext): void {
    for (const p of this.parts) p.routes?.(app, rt)
  }

  /** Attaches the handlers' workflows and cron jobs, then moves every `$.on` handler through its events (called by serve()). */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#rt = rt
    this.#log = rt.logger.child({ semantic: this.name })
    this.#owner = rt.instanceId
    this.#ac = new AbortController()
    for (const p of this.parts) await p.attach?.(rt)
    for (const o of this.#once) await o.workflow.start({ at: o.at.toISOString() }, { workflowId: `at:${this.name}:${o.workflow.name}:${o.at.toISOString()}` })
    const db: Database = rt.db
    this.#deps = this.#on.map((r) => ({
      app: this.name,
      handler: r.name,
      pattern: r.pattern,
      events: this.#source.events,
      workflow: r.workflow,
      db,
      owner: this.#owner,
      log: this.#log,
      startAt: this.#startAt,
      leaseMs: 30_000,
      batch: 200,
    }))
    this.#loops = this.#deps.map((d) => this.#loop(d))
  }

  async #loop(d: RunnerDeps): Promise<void> {
    const signal = this.#ac.signal
    let wake: (() => void) | undefined
    // New events wake the loop at once; the 1 s pass below covers a lost notification.
    const stop = d.events.subscribe(() => wake?.())
    await stop.ready.catch((err: unknown) => this.#log.warn({ err, handler: d.handler }, 'semantic: no live wake-ups for this handler; it polls every second'))
    try {
      while (!signal.aborted) {
        let busy = false
        try {
          busy = await step(d, signal)
        } catch (err) {
          if (!signal.aborted) this.#log.error({ err, handler: d.handler }, 'semantic: handler step failed; retrying')
        }
        if (busy || signal.aborted) continue
        await new Promise<void>((r) => {
          const done = () => {
            clearTimeout(t)
            signal.removeEventListener('abort', done)
            r()
          }
          // One listener per wait, removed when the wait ends: an idle handler loops every second for days.
          const t = setTimeout(done, 1000)
          wake = done
          signal.addEventListener('abort', done, { once: true })
        })
        wake = undefined
      }
    } finally {
      await stop()
    }
  }

  /** Stops the handlers (their cursors handed back at once), then the workflows and cron jobs behind them. */
  async detach(): Promise<void> {
    this.#ac.abort()
    await Promise.allSettled(this.#loops)
    await Promise.allSettled(this.#deps.map((d) => release(d)))
    for (const p of [...this.parts].reverse()) await p.detach?.()
    this.#rt = undefined
  }
}

/** `$.on`: `$.on.Noun.verb(h)` or `$.on('Noun.verb', h)`; each returns a no-op kept for dotdo's unsubscribe shape. */
export type On = ((type: string, h: OnHandler, o?: HandlerOptions) => () => void) & Record<string, Record<string, (h: OnHandler, o?: HandlerOptions) => () => void>>

type Register = (h: ScheduledHandler, o?: HandlerOptions) => void
type Hour12 = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12
/** `at9am`, `at930pm`, `at1145am`, `atnoon`, `atmidnight` (any other `at…` is read the same way at run time). */
export type AtProperty = `at${Hour12}${'' | '00' | '15' | '30' | '45'}${'am' | 'pm'}` | 'atnoon' | 'atmidnight'
/** What follows a day word: `.at('9:30pm', timezone?)` or `.at9am`. */
export type DayAt = { at(time: string, timezone?: string): Register } & { readonly [K in AtProperty]: Register }
type Weekday = 'Monday' | 'Tuesday' | 'Wednesday' | 'Thursday' | 'Friday' | 'Saturday' | 'Sunday'
/** The day words of `$.every`. */
export type DayWord = Weekday | Lowercase<Weekday> | 'day' | 'everyday' | 'weekday' | 'weekend'
/** `$.every`: `.Monday.at9am(h)`, `.day.at('6pm')(h)`, `.hour(h)`, `.minute(h)`, `.second(h)`, or `(n).minutes(h)` (seconds, minutes, hours, days). */
export type Every = ((n: number) => { readonly [U in 'second' | 'seconds' | 'minute' | 'minutes' | 'hour' | 'hours' | 'day' | 'days']: Register }) & {
  readonly [D in DayWord]: DayAt
} & { readonly hour: Register; readonly minute: Register; readonly second: Register }

/**
 * Fluent configuration for {@link Semantic}.
 *
 * @example
 * ```ts
 * Semantic.create('shop').source(things).from('start').build()
 * ```
 */
export class SemanticBuilder {
  readonly #name: string
  #source: EventSource | undefined
  #startAt: 'head' | 'start' = 'start'

  constructor(name: string) {
    if (!NAME.test(name)) throw new ConfigError('INVALID_NAME', `Semantic name "${name}" is invalid: 1-64 letters, digits, ".", "_" or "-"`)
    this.#name = name
  }

  /** The Things store whose events the handlers follow (and where `send` appends). */
  source(s: EventSource): this {
    this.#source = s
    return this
  }

  /** Where a handler seen for the first time starts: every event kept so far (`'start'`, the default) or only new ones (`'head'`). */
  from(where: 'start' | 'head'): this {
    this.#startAt = where
    return this
  }

  build(): Semantic {
    if (!this.#source) throw new ConfigError('SEMANTIC_NO_SOURCE', `Semantic "${this.#name}" needs .source(things)`)
    registerPrimitive({ primitive: 'semantic', name: this.#name, infrastructure: ['postgresql'], config: {} })
    return new Semantic(this.#name, this.#source, this.#startAt)
  }
}
