import { randomUUID } from 'node:crypto'
import { isRetryable, OnePipeError, retryDelay, serializeError, type Database, type Queryable } from '@onepipe/core'
import { awaitOwner } from './lease.js'
import { runAttempts, type AttemptStats, type RetryPolicy } from './retry.js'
import { asRecorded, GRACE_MS, settledOf, sleep, takeable, type ChannelRunner, type Keyed, type Settled } from './runner.js'
import { claimKey, finishKey, limitStatements, markHandlerStart, recordCall, takeOverKey, undoHandler, type KeyRow, type Outcome } from './store.js'
import { guardTransaction } from './tx.js'
import type { TransactionalContext } from './types.js'
import { keyTag, NOTIFY } from './waiters.js'

/**
 * What one transaction of a transactional call ended with (it committed).
 * `recorded` settles with the statement that stored the result when it was
 * sent with the COMMIT: a rejection means the COMMIT rolled back instead.
 */
type TxStep<O> = { kind: 'done'; value: O; text: string | undefined; recorded: Promise<void> } | { kind: 'failed'; error: unknown } | { kind: 'stored'; row: KeyRow }

/** What a transactional attempt learned besides its outcome, for the retry decision and history. */
interface TxRun {
  attempts: number
  /** The handler started in this attempt (so a history row is due). */
  ran: boolean
  /** The handler ignored its abort and is still running. */
  stray: Promise<unknown> | undefined
  /** A statement of the handler failed: the driver rolls the transaction back whatever follows. */
  statementFailed: boolean
  /** The terminal failure to record after the rollback, when a failed statement kept it out of the transaction. */
  terminal: { error: unknown } | undefined
}

/** A transactional call's claim on its key: the row it inserts, and when the call began. */
interface Claim {
  channel: string
  key: string
  hash: string
  owner: string
  leaseMs: number
  ttlMs: number
  t0: number
}

const ONE_ATTEMPT: RetryPolicy = { attempts: 1, backoff: 'fixed', delayMs: 0, maxDelayMs: 0 }

/**
 * @internal The calls of a channel built with `.transactional()` (see
 * `ChannelBuilder.transactional`): each attempt is one database transaction
 * that claims the key, runs the handler on `ctx.tx` and records the outcome.
 */
export class TransactionalCalls<O> {
  readonly #r: ChannelRunner<O>
  /** Transactional calls running a key in this process, each resolving with the key's outcome once committed. */
  readonly #inFlight = new Map<string, Promise<{ hash: string; settled: Settled } | undefined>>()

  constructor(runner: ChannelRunner<O>) {
    this.#r = runner
  }

  /**
   * A transactional call with a key. In this process one call per key runs
   * at a time: the others wait for it in memory, holding no connection, and
   * answer its committed outcome when their input is the same (or look at
   * the key themselves once it is decided). A duplicate in another process
   * blocks on the uncommitted claim, and reads the outcome once it commits.
   */
  async once(value: unknown, k: Keyed): Promise<O> {
    const tag = keyTag(this.#r.name, k.key)
    for (let ahead = this.#inFlight.get(tag); ahead; ahead = this.#inFlight.get(tag)) {
      const before = await ahead
      if (before && before.hash === k.hash) return this.#r.replay(before.settled, k.key)
    }
    let settled: Settled | undefined
    const run = this.#keyed(value, k, tag, (s) => (settled = s))
    const decided = () => {
      // Gone from the map before anyone waiting on it resumes, so the next in line finds the key free.
      if (this.#inFlight.get(tag) === entry) this.#inFlight.delete(tag)
      return settled && { hash: k.hash, settled }
    }
    const entry = run.then(decided, decided)
    this.#inFlight.set(tag, entry)
    return run
  }

  /**
   * The attempts of a transactional call with a key, each one transaction.
   * A retryable failure rolls everything back, the key included, before the
   * next attempt; a crash does the same. `share` gets the outcome once it is
   * committed, for the calls waiting in this process.
   */
  async #keyed(value: unknown, k: Keyed, tag: string, share: (s: Settled) => void): Promise<O> {
    const r = this.#r
    const db = r.database
    const policy = r.c.retry
    const claim: Claim = { channel: r.name, key: k.key, hash: k.hash, owner: randomUUID(), leaseMs: k.leaseMs, ttlMs: k.ttlMs, t0: performance.now() }
    for (let attempt = 1; ; ) {
      const run: TxRun = { attempts: attempt, ran: false, stray: undefined, statementFailed: false, terminal: undefined }
      let step: TxStep<O>
      try {
        step = await db.transaction((tx) => this.#claimAndRun(tx, value, claim, run))
        if (step.kind === 'done') await step.recorded
      } catch (err) {
        if (run.terminal) {
          // A failed statement doomed the transaction, so the terminal failure could not be recorded in it.
          const recorded = serializeError(run.terminal.error)
          if (await this.#recordTerminal(db, claim, run)) share({ kind: 'failed', error: recorded })
          // The first caller gets the failure exactly as every replay will.
          throw asRecorded(recorded, run.terminal.error)
        }
        if (run.stray || !isRetryable(err) || attempt >= policy.attempts) {
          if (run.ran) await this.#recordRolledBack(db, claim.key, run, claim.t0, err)
          throw err
        }
        await sleep(retryDelay(policy, attempt))
        attempt++
        continue
      }
      if (step.kind === 'done') {
        share({ kind: 'completed', text: step.text ?? null })
        return step.value
      }
      if (step.kind === 'failed') {
        const recorded = serializeError(step.error)
        share({ kind: 'failed', error: recorded })
        throw asRecorded(recorded, step.error)
      }
      const settled = settledOf(step.row, k.hash)
      if (settled) {
        share(settled)
        return r.replay(settled, k.key)
      }
      // Pending and committed: a lease-mode owner (a channel of this name without
      // .transactional(), during a rolling deploy). Wait for it outside any transaction.
      const waiter = r.keyWaiters(db).register(tag)
      try {
        await awaitOwner(r, db, k.key, waiter)
      } finally {
        waiter.cancel()
      }
    }
  }

  /**
   * One transaction: claims the key (or finds its committed outcome), runs
   * the handler on the transaction and records the result with it. A
   * terminal failure undoes the handler's writes back to the savepoint taken
   * with the claim and records the error in the same transaction, so the key
   * never looks free to a duplicate blocked on it. Throws (rolling back, key
   * included) for a retryable failure, a handler still running after its
   * timeout, or a terminal failure after a failed statement (`run.terminal`).
   */
  async #claimAndRun(tx: Queryable, value: unknown, claim: Claim, run: TxRun): Promise<TxStep<O>> {
    const timeoutMs = this.#r.c.timeoutMs
    // The savepoint (and the statement limit) go out in the same round trip as the claim.
    const marks = () => [markHandlerStart(tx), ...(timeoutMs === undefined ? [] : [limitStatements(tx, timeoutMs + GRACE_MS)])]
    for (;;) {
      const [c] = await Promise.all([claimKey(tx, claim), ...marks()])
      if (c.claimed) break
      // No row: a concurrent claim committed after this statement's snapshot; the next statement sees it.
      if (!c.row) continue
      if (!takeable(c.row, claim.hash)) return { kind: 'stored', row: c.row }
      const [taken] = await Promise.all([takeOverKey(tx, claim), ...marks()])
      if (taken) break
    }
    let result: { value: O; text: string | undefined }
    try {
      result = await this.#inTx(tx, value, claim.key, run)
    } catch (err) {
      if (run.stray || isRetryable(err)) throw err
      if (run.statementFailed) {
        run.terminal = { error: err }
        throw err
      }
      await undoHandler(tx)
      await this.#finishInTx(tx, this.#outcome(claim, run, { status: 'failed', result: null, error: serializeError(err) }))
      return { kind: 'failed', error: err }
    }
    const recorded = this.#finishInTx(tx, this.#outcome(claim, run, { status: 'completed', result: result.text ?? null, error: null }))
    if (this.#r.database.kind !== 'postgres') await recorded
    // On PostgreSQL the result goes out in one write with the COMMIT, a round trip less. If it
    // failed, the transaction was aborted and PostgreSQL answers that COMMIT with a rollback.
    else recorded.catch(() => undefined)
    return { kind: 'done', ...result, recorded }
  }

  #outcome(claim: Claim, run: TxRun, o: Pick<Outcome, 'status' | 'result' | 'error'>): Outcome {
    const notifyChannel = this.#r.database.channel(NOTIFY)
    const name = this.#r.name
    return { channel: name, key: claim.key, owner: claim.owner, notifyChannel, notifyPayload: keyTag(name, claim.key), attempts: run.attempts, durationMs: Math.round(performance.now() - claim.t0), ...o }
  }

  async #finishInTx(tx: Queryable, o: Outcome): Promise<void> {
    // The claim's row lock is held since the claim: nobody else can have changed the row.
    if (!(await finishKey(tx, o))) throw new OnePipeError('CHANNEL_KEY_LOST', `Channel "${this.#r.name}": the claimed key "${o.key}" changed inside its own transaction`, { status: 500 })
  }

  /**
   * Records a terminal failure whose transaction rolled back, in a fresh
   * short one: claims the key again and stores the error. A duplicate that
   * was blocked on the key may have claimed it in between (its handler then
   * runs, and its outcome is the key's); answers whether this one was stored.
   */
  async #recordTerminal(db: Database, claim: Claim, run: TxRun): Promise<boolean> {
    const error = serializeError(run.terminal?.error)
    try {
      return await db.transaction(async (tx) => {
        const c = await claimKey(tx, claim)
        if (!c.claimed && !(c.row && takeable(c.row, claim.hash) && (await takeOverKey(tx, claim)))) return false
        await this.#finishInTx(tx, this.#outcome(claim, run, { status: 'failed', result: null, error }))
        return true
      })
    } catch (e) {
      this.#r.log.error({ err: e, channel: this.#r.name, key: claim.key }, 'channel: could not record the terminal failure of a rolled-back call; a later call with its key runs again')
      await this.#recordRolledBack(db, claim.key, run, claim.t0, run.terminal?.error)
      return false
    }
  }

  /** Runs the handler once on the transaction (timeout through ctx.signal) and checks its result. */
  async #inTx(tx: Queryable, value: unknown, key: string | undefined, run: TxRun): Promise<{ value: O; text: string | undefined }> {
    const r = this.#r
    const handler = r.c.handler as (input: unknown, ctx: TransactionalContext) => unknown
    const guard = guardTransaction(tx, `Channel "${r.name}"`)
    const stats: AttemptStats = { attempts: 0, stillRunning: undefined }
    run.ran = true
    try {
      const out = await runAttempts(
        (abort) => {
          // A timed-out handler's later statements must not reach the transaction (nor, after it, the pool).
          abort.onAbort(guard.close)
          return r.handleSpan(run.attempts, () =>
            Promise.resolve(
              handler(value, {
                channel: r.name,
                get signal() {
                  return abort.signal
                },
                attempt: run.attempts,
                idempotencyKey: key,
                logger: r.log,
                tx: guard.tx,
              }),
            ),
          )
        },
        ONE_ATTEMPT,
        r.c.timeoutMs,
        GRACE_MS,
        `Channel "${r.name}"`,
        stats,
      )
      guard.close()
      return await r.stored(out)
    } finally {
      guard.close()
      run.stray = stats.stillRunning
      run.statementFailed = guard.failed()
    }
  }

  /** A transactional call without a key: each attempt runs the handler and appends its history row in one transaction. */
  async plain(value: unknown): Promise<O> {
    const r = this.#r
    const db = r.database
    const c = r.c
    const t0 = performance.now()
    for (let attempt = 1; ; attempt++) {
      const run: TxRun = { attempts: attempt, ran: false, stray: undefined, statementFailed: false, terminal: undefined }
      try {
        return await db.transaction(async (tx) => {
          if (c.timeoutMs !== undefined) await limitStatements(tx, c.timeoutMs + GRACE_MS)
          const out = await this.#inTx(tx, value, undefined, run)
          if (c.history) await recordCall(tx, { channel: r.name, status: 'completed', attempts: attempt, durationMs: Math.round(performance.now() - t0), error: null })
          return out.value
        })
      } catch (err) {
        if (run.stray || !isRetryable(err) || attempt >= c.retry.attempts) {
          if (run.ran && c.history) await this.#recordRolledBack(db, undefined, run, t0, err)
          throw err
        }
        await sleep(retryDelay(c.retry, attempt))
      }
    }
  }

  /**
   * The history row of a transactional call whose last transaction rolled
   * back (its outcome row went with it). The caller gets the handler's error
   * either way: a failure to write this row is only logged.
   */
  async #recordRolledBack(db: Database, key: string | undefined, run: TxRun, t0: number, err: unknown): Promise<void> {
    const name = this.#r.name
    try {
      await recordCall(db, { channel: name, ...(key === undefined ? {} : { key }), status: 'failed', attempts: run.attempts, durationMs: Math.round(performance.now() - t0), error: serializeError(err) })
    } catch (e) {
      this.#r.log.error({ err: e, channel: name, key }, 'channel: could not record the history of a rolled-back call')
    }
  }
}
