import { parseDuration, TimeoutError, type Duration, type Queryable } from '@onepipe/core'
import type { WorkflowContext } from '../workflow/types.js'

/**
 * An event of the semantic layer as a handler gets it: `Noun.verb`, the
 * thing it is about, and what it carries.
 *
 * @example
 * ```ts
 * { type: 'Order.created', noun: 'Order', verb: 'created', id: 'o-17', data: { $id: 'o-17', total: 42, … }, offset: 118 }
 * ```
 */
export interface SemanticEvent<D = Record<string, unknown>> {
  type: string
  noun: string
  verb: string
  /** The thing it is about (its `$id`), when it is about one. */
  id?: string
  data: D
  /** Its offset in the event flow. */
  offset: number
}

/** Options of {@link HandlerContext.do}. */
export interface DoOptions {
  /** The step's id in the run's log; default `do` (the n-th call gets `do#n`, deterministic while the handler is). */
  stepId?: string
  /** Attempts after the first on failure (default 2, i.e. 3 attempts), with exponential backoff. */
  maxRetries?: number
  /**
   * Run `fn` inside a database transaction committed together with the
   * step's record: its database effects happen exactly once. Without it the
   * result is recorded after `fn` returns, so an effect outside the
   * database may repeat if the process dies in between (make it idempotent).
   */
  transaction?: boolean
}

/**
 * What a `$.on` or `$.every` handler gets besides its event: durable
 * actions (`do`), one bounded attempt (`try`), and `send` to emit events.
 *
 * @example
 * ```ts
 * $.on.Order.created(async (order, $) => {
 *   await $.do(({ tx }) => tx!.execute('INSERT INTO invoices (order_id) VALUES ($1)', [order.id]), { stepId: 'invoice', transaction: true })
 *   await $.try(({ signal }) => fetch('https://hooks.example.com', { signal }), { timeout: '5s' })
 * })
 * ```
 */
export interface HandlerContext {
  /** The run's id: derived from the handler and the event (or the tick), so a re-delivery finds the same run. */
  readonly runId: string
  /**
   * A durable action: its result is recorded in the workflow step log under
   * a deterministic id, so a replayed handler returns it instead of running
   * `fn` again; a failure is retried `maxRetries` times with backoff.
   */
  do<T>(fn: (a: { signal: AbortSignal; tx?: Queryable }) => Promise<T> | T, options?: DoOptions): Promise<T>
  /**
   * One attempt, not recorded: `fn`'s signal aborts at `timeout` and the
   * call rejects with TimeoutError `TRY_TIMEOUT`.
   */
  try<T>(fn: (a: { signal: AbortSignal }) => Promise<T> | T, options?: { timeout?: Duration }): Promise<T>
  /** Appends a custom `Noun.verb` event (`id`: the thing it is about), once per run (a recorded step). */
  send(type: string, data: Record<string, unknown>, o?: { id?: string }): Promise<void>
}

/** Runs `fn` once with an AbortSignal that fires at `timeoutMs`. */
export async function attempt<T>(fn: (a: { signal: AbortSignal }) => Promise<T> | T, timeoutMs: number): Promise<T> {
  const ac = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new TimeoutError('TRY_TIMEOUT', `$.try: the attempt did not finish within ${timeoutMs} ms`, { timeoutMs })
      ac.abort(e)
      reject(e)
    }, timeoutMs)
  })
  try {
    return await Promise.race([Promise.resolve().then(() => fn({ signal: ac.signal })), late])
  } finally {
    clearTimeout(timer)
  }
}

/** The context of one run, over the workflow context that records its steps. */
export function handlerContext(ctx: WorkflowContext, send: (type: string, data: Record<string, unknown>, o?: { id?: string }) => Promise<unknown>): HandlerContext {
  return {
    runId: ctx.workflowId,
    do: <T>(fn: (a: { signal: AbortSignal; tx?: Queryable }) => Promise<T> | T, o: DoOptions = {}) => {
      const retry = { attempts: (o.maxRetries ?? 2) + 1, backoff: 'exponential' as const }
      const id = o.stepId ?? 'do'
      return o.transaction ? ctx.transaction(id, async (tx, signal) => fn({ signal, tx }), { retry }) : ctx.step(id, (signal) => fn({ signal }), { retry })
    },
    try: (fn, o = {}) => attempt(fn, parseDuration(o.timeout ?? '30s')),
    send: async (type, data, o) => {
      await ctx.step(`send:${type}`, async () => {
        await send(type, data, o)
      })
    },
  }
}
