import {
  ConfigError,
  activeSpan,
  decodeValue,
  deserializeError,
  encodeValue,
  OnePipeError,
  stderrLogger,
  tracingEnabled,
  validate,
  ValidationError,
  withSpan,
  type Database,
  type Logger,
  type SerializedError,
} from '@onepipe/core'
import { IdempotencyConflictError } from './errors.js'
import { runAttempts, type AttemptStats } from './retry.js'
import type { KeyRow } from './store.js'
import type { ChannelConfig, ChannelContext } from './types.js'
import { KeyWaiters } from './waiters.js'

/** The key, input hash and expiry of an idempotent call. */
export interface Keyed {
  key: string
  hash: string
  ttlMs: number
  leaseMs: number
}

/** A key's committed outcome for one input: what every call with that key and input answers. */
export type Settled = { kind: 'completed'; text: string | null } | { kind: 'failed'; error: SerializedError } | { kind: 'conflict' }

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
/** How long a timed-out attempt may take to honour its abort before the call gives up without retrying. */
export const GRACE_MS = 1000

/** Whether a row someone else claimed may be taken over: it expired, or its lease ran out with the same input (its owner died). */
export function takeable(row: KeyRow, hash: string): boolean {
  return row.expired || (row.status === 'pending' && row.leaseMsLeft <= 0 && row.inputHash === hash)
}

/** What a row someone else claimed means for a call with input `hash`; undefined while it is pending. */
export function settledOf(row: KeyRow, hash: string): Settled | undefined {
  if (row.inputHash !== hash) return { kind: 'conflict' }
  if (row.status === 'completed') return { kind: 'completed', text: row.result }
  if (row.status === 'failed') return { kind: 'failed', error: row.error ?? { name: 'Error', code: 'UNKNOWN', message: 'failed', status: 500, retryable: false } }
  return undefined
}

/** A recorded failure as duplicates will see it, with what was really thrown kept as its `cause` (for stack traces). */
export function asRecorded(recorded: SerializedError, original: unknown): OnePipeError {
  const e = deserializeError(recorded)
  Object.defineProperty(e, 'cause', { value: original, enumerable: false, configurable: true })
  return e
}

/**
 * @internal What every path of a channel's calls shares (the plain one in
 * channel.ts, the lease one in lease.ts, the transactional one in
 * transactional.ts): the configuration, the database and logger (which
 * `attach()` may set after the build), the handler's attempts, the replay
 * of a key's outcome, the key waiters and the work left running in the
 * background.
 */
export class ChannelRunner<O = unknown> {
  readonly c: ChannelConfig
  readonly name: string
  db: Database | undefined
  log: Logger = stderrLogger
  #waiters: KeyWaiters | undefined
  readonly #background = new Set<Promise<unknown>>()
  readonly #replays: { inc(): void }

  constructor(c: ChannelConfig, replays: { inc(): void }) {
    this.c = c
    this.name = c.name
    this.db = c.db
    this.#replays = replays
  }

  get database(): Database {
    if (this.db) return this.db
    throw new ConfigError('CHANNEL_NO_DB', `Channel "${this.name}" uses idempotency or .transactional() but has no database: give it .db(db) or pass it to serve({ channels })`)
  }

  /**
   * Runs the handler (with retries) and returns its result as stored: the
   * JSON text (undefined for a handler that returned nothing) and the value
   * read back from it, so the first caller sees exactly what every replay
   * will. A result that cannot round-trip is the handler's bug: a terminal
   * `INVALID_RESULT` (500), recorded like any other terminal failure.
   */
  async attempts(value: unknown, key: string | undefined, stats: AttemptStats): Promise<{ value: O; text: string | undefined }> {
    const c = this.c
    const handler = c.handler as (input: unknown, ctx: ChannelContext) => unknown
    const out = await runAttempts(
      (abort, attempt) =>
        this.handleSpan(attempt, () =>
          Promise.resolve(
            handler(value, {
              channel: this.name,
              get signal() {
                return abort.signal
              },
              attempt,
              idempotencyKey: key,
              db: this.db,
              logger: this.log,
            }),
          ),
        ),
      c.retry,
      c.timeoutMs,
      GRACE_MS,
      `Channel "${this.name}"`,
      stats,
    )
    return this.stored(out)
  }

  /** One run of the handler as a span (a child of the call's), so what the handler does nests under it. */
  handleSpan<R>(attempt: number, run: () => Promise<R>): Promise<R> {
    if (!tracingEnabled()) return run()
    return withSpan(`channel.handle ${this.name}`, { kind: 'server', attributes: { 'onepipe.channel': this.name, 'onepipe.channel.attempt': attempt, 'rpc.system': 'onepipe', 'rpc.method': this.name } }, run)
  }

  /** Checks a handler's result against `.output()` and the value rule; answers it as stored and as read back. */
  async stored(out: unknown): Promise<{ value: O; text: string | undefined }> {
    const c = this.c
    let result: unknown = out
    if (c.output) {
      try {
        result = await validate(c.output, out, `output of channel "${this.name}"`)
      } catch (e) {
        // The handler broke its own contract: a server bug, not the caller's input.
        throw new OnePipeError('CHANNEL_BAD_OUTPUT', (e as Error).message, { status: 500, retryable: false, details: { issues: (e as ValidationError).issues } })
      }
    }
    const text = encodeValue(result, { subject: `result of channel "${this.name}"`, code: 'INVALID_RESULT', status: 500, allowUndefined: true })
    return { value: decodeValue<O>(text), text }
  }

  /** What a call answers for a key's committed outcome: the result, the recorded error, or a conflict. */
  replay(s: Settled, key: string): O {
    if (s.kind !== 'conflict') {
      this.#replays.inc()
      activeSpan()?.setAttribute('onepipe.channel.replayed', true)
    }
    if (s.kind === 'completed') return decodeValue<O>(s.text)
    if (s.kind === 'failed') throw deserializeError(s.error)
    throw new IdempotencyConflictError(this.name, key)
  }

  keyWaiters(db: Database): KeyWaiters {
    return (this.#waiters ??= new KeyWaiters(db, this.c.recheckMs))
  }

  track(p: Promise<unknown>): void {
    this.#background.add(p)
    void p.finally(() => this.#background.delete(p))
  }

  /** Waits for stray timed-out attempts, then stops listening. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#background])
    await this.#waiters?.close()
    this.#waiters = undefined
  }
}
