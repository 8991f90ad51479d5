import type { Database, Logger } from '@onepipe/core'
import type { ConsumeMessage } from 'amqplib'
import { randomUUID } from 'node:crypto'
import type { Job, StageEngine } from '../engine/engine.js'
import { Broker, settle, stageQueue, type Lane } from './rabbitmq-broker.js'
import { OutboxRelay } from './rabbitmq-relay.js'
import type { Dispatch } from './postgres.js'

/** A message taken off a stage queue, settled on its own lane only. */
interface Delivery {
  /** The queue it came from. */
  key: string
  stageId: string
  msg: ConsumeMessage
  lane: Lane
}

/** One parked pull. */
interface Waiter {
  appId: string
  handlers: ReadonlySet<string>
  max: number
  workerId: string | null
  /** Deliveries handed to it while parked, claimed when it wakes. */
  inbox: Delivery[]
  parked: boolean
  /** Look in PostgreSQL again (a reconnect, the periodic re-check). */
  nudged: boolean
  wake: () => void
}

/** The consumer of one stage queue, alive while pulls for it are parked in this process. */
interface Consumer {
  appId: string
  handler: string
  /** Pulls in this process that want it. */
  wanted: number
  tag: string | undefined
  lane: Lane | undefined
  busy: boolean
  /** Deliveries that came while every pull for it was busy claiming: the next one takes them. */
  spare: Delivery[]
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * RabbitMQ dispatch (`RABBITMQ_URL`). PostgreSQL still decides who gets a
 * stage: a message only names a stage, and the claim by id (Pending, SKIP
 * LOCKED, a new execution id) hands it out once however many replicas and
 * duplicates there are. Workers never see the broker: they long-poll the
 * control plane over HTTP, and a parked pull consumes the queues
 * `{appId}.stage.{handler}` of its handlers while it waits.
 *
 * - Publishing: a trigger writes each stage made Pending to the outbox in
 *   the transaction that made it so (000012_pipeline_outbox.sql); every
 *   replica's {@link OutboxRelay} publishes with confirms and deletes the
 *   rows, so a failed publish never strands a stage.
 * - Consuming: a delivery is claimed for a parked pull and acked on the
 *   channel it came from once the claim committed; a delivery of a stage
 *   no longer Pending is acked and dropped; one nobody waits for any more
 *   is requeued. A consumer lives while pulls for its queue are parked here.
 * - A pull claims from PostgreSQL when it arrives, after every reconnect
 *   and on a periodic re-check, so a message lost with a channel or still
 *   in the outbox delays nothing for long.
 *
 * @example
 * ```ts
 * const dispatch = new RabbitDispatch(db, engine, { log, url: 'amqp://guest:guest@127.0.0.1:5672' })
 * await dispatch.start()
 * const jobs = await dispatch.pull(appId, ['vision.analyze'], 8, 20_000, workerId, signal)
 * ```
 */
export class RabbitDispatch implements Dispatch {
  readonly #engine: StageEngine
  readonly #log: Logger
  readonly #waiters = new Set<Waiter>()
  readonly #consumers = new Map<string, Consumer>()
  readonly #recheckMs: number
  readonly #prefetch: number
  readonly #broker: Broker
  readonly #relay: OutboxRelay
  #recheck: NodeJS.Timeout | undefined
  /** Claims of arriving pulls queue here: one runs at a time in this process, as in PostgreSQL dispatch. */
  #queue: Promise<unknown> = Promise.resolve()

  constructor(db: Database, engine: StageEngine, o: { log: Logger; url: string; recheckMs?: number; prefetch?: number; instanceId?: string }) {
    this.#engine = engine
    this.#log = o.log
    this.#recheckMs = o.recheckMs ?? 5000
    this.#prefetch = o.prefetch ?? 16
    this.#broker = new Broker(o.url, o.log, { onUp: () => this.#up(), onDown: () => this.#down() })
    this.#relay = new OutboxRelay(db, this.#broker, o.log, o.instanceId ?? randomUUID())
  }

  async start(): Promise<void> {
    await this.#broker.start()
    await this.#relay.start()
    this.#recheck = setInterval(() => this.#wakeAll(), this.#recheckMs)
    this.#recheck.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.#recheck)
    this.#recheck = undefined
    this.#wakeAll()
    await this.#relay.stop()
    await this.#broker.stop()
  }

  /** Pulls parked in this process (for the dashboard and tests). */
  get parked(): number {
    return this.#waiters.size
  }

  /** @internal Tests: the broker connection and the outbox relay. */
  get internals(): { broker: Broker; relay: OutboxRelay; consumers: number } {
    return { broker: this.#broker, relay: this.#relay, consumers: [...this.#consumers.values()].filter((c) => c.tag).length }
  }

  /**
   * Answers up to `max` jobs for `handlers` as soon as there are some, or
   * [] after `waitMs` or when `signal` aborts (shutdown, client gone).
   */
  async pull(appId: string, handlers: readonly string[], max: number, waitMs: number, workerId: string | null, signal: AbortSignal): Promise<Job[]> {
    const deadline = Date.now() + waitMs
    let wake: () => void = () => undefined
    const w: Waiter = { appId, handlers: new Set(handlers), max, workerId, inbox: [], parked: false, nudged: true, wake: () => wake() }
    // Registered and consuming before the first claim: a message that lands meanwhile is not lost.
    this.#waiters.add(w)
    this.#want(w, 1)
    try {
      for (;;) {
        this.#takeSpare(w)
        let jobs: Job[] = []
        if (w.inbox.length > 0) jobs = await this.#claimInbox(w)
        if (jobs.length === 0 && w.nudged) {
          w.nudged = false
          jobs = await this.#claim(appId, handlers, max, workerId)
          // A full batch may have left more behind: another parked pull looks too.
          if (jobs.length === max) this.#nudgeOne(w)
        }
        if (jobs.length > 0 || signal.aborted) return jobs
        const left = deadline - Date.now()
        if (left <= 0) return []
        if (w.nudged || this.#hasSpare(w)) continue
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, left)
          const onAbort = (): void => done()
          signal.addEventListener('abort', onAbort, { once: true })
          function done(): void {
            w.parked = false
            clearTimeout(timer)
            signal.removeEventListener('abort', onAbort)
            resolve()
          }
          wake = done
          w.parked = true
        })
        wake = () => undefined
        if (signal.aborted) return []
      }
    } finally {
      this.#waiters.delete(w)
      // Deliveries it was handed but did not claim go to another pull, or back to the queue.
      for (const d of w.inbox.splice(0)) this.#route(w.appId, d)
      this.#want(w, -1)
    }
  }

  #claim(appId: string, handlers: readonly string[], max: number, workerId: string | null): Promise<Job[]> {
    const run = this.#queue.then(() => this.#engine.claim(appId, handlers, max, workerId))
    this.#queue = run.catch(() => undefined)
    return run
  }

  /**
   * Claims the stages of the deliveries a pull was handed, then acks every
   * one of them on its own lane: claimed, or no longer Pending, the message
   * is done. A failed claim requeues them (and counts toward the delivery
   * limit).
   */
  async #claimInbox(w: Waiter): Promise<Job[]> {
    const batch = w.inbox.splice(0)
    let jobs: Job[]
    try {
      jobs = await this.#engine.claimByIds(w.appId, [...new Set(batch.map((d) => d.stageId))], w.workerId)
    } catch (err) {
      for (const d of batch) settle(d.lane, d.msg, 'requeue')
      throw err
    }
    for (const d of batch) settle(d.lane, d.msg, 'ack')
    return jobs
  }

  /** One delivery on the consumer of `c`. */
  #delivered(c: Consumer, m: ConsumeMessage | null, lane: Lane): void {
    if (m === null) {
      // RabbitMQ cancelled the consumer (the queue was deleted): start it again if still wanted.
      if (c.lane === lane) {
        c.tag = undefined
        c.lane = undefined
      }
      this.#reconcile(c)
      return
    }
    let stageId: unknown
    try {
      stageId = (JSON.parse(m.content.toString('utf8')) as { stageId?: unknown }).stageId
    } catch {
      stageId = undefined
    }
    if (typeof stageId !== 'string' || !UUID.test(stageId)) {
      this.#log.warn({ queue: stageQueue(c.appId, c.handler) }, 'pipelines: a message without a stage id was dead-lettered')
      settle(lane, m, 'reject')
      return
    }
    this.#route(c.appId, { key: stageQueue(c.appId, c.handler), stageId, msg: m, lane })
  }

  /**
   * Hands a delivery to a parked pull with room (woken on the next turn, so
   * a burst of deliveries fills one pull's batch), else keeps it for a pull
   * that is busy claiming, else requeues it.
   */
  #route(appId: string, d: Delivery): void {
    if (!d.lane.alive) return
    const handler = d.key.slice(appId.length + '.stage.'.length)
    for (const w of this.#waiters) {
      if (!w.parked || w.appId !== appId || !w.handlers.has(handler) || w.inbox.length >= w.max) continue
      if (w.inbox.length === 0) setImmediate(() => w.wake())
      w.inbox.push(d)
      return
    }
    const c = this.#consumers.get(d.key)
    if (c && c.wanted > 0) c.spare.push(d)
    else settle(d.lane, d.msg, 'requeue')
  }

  #takeSpare(w: Waiter): void {
    for (const h of w.handlers) {
      const c = this.#consumers.get(stageQueue(w.appId, h))
      if (!c) continue
      while (c.spare.length > 0 && w.inbox.length < w.max) {
        const d = c.spare.shift()!
        if (d.lane.alive) w.inbox.push(d)
      }
    }
  }

  #hasSpare(w: Waiter): boolean {
    for (const h of w.handlers) if ((this.#consumers.get(stageQueue(w.appId, h))?.spare.length ?? 0) > 0) return true
    return false
  }

  /** Counts a pull in (+1) or out (-1) of the consumers of its handlers, starting or cancelling them. */
  #want(w: Waiter, by: 1 | -1): void {
    for (const h of w.handlers) {
      const key = stageQueue(w.appId, h)
      let c = this.#consumers.get(key)
      if (!c) {
        if (by < 0) continue
        c = { appId: w.appId, handler: h, wanted: 0, tag: undefined, lane: undefined, busy: false, spare: [] }
        this.#consumers.set(key, c)
      }
      c.wanted += by
      this.#reconcile(c)
    }
  }

  /** Brings one consumer to what is wanted: consuming while pulls want it and the broker is up, cancelled otherwise. */
  #reconcile(c: Consumer): void {
    if (c.busy) return
    c.busy = true
    void (async () => {
      for (;;) {
        if (c.lane && !c.lane.alive) {
          c.tag = undefined
          c.lane = undefined
        }
        const want = c.wanted > 0 && this.#broker.up
        if (want && !c.tag) {
          const got = await this.#broker.consume(stageQueue(c.appId, c.handler), this.#prefetch, (m, lane) => this.#delivered(c, m, lane))
          if (!got) break
          c.tag = got.tag
          c.lane = got.lane
        } else if (!want && c.tag && c.lane) {
          const { tag, lane } = c
          c.tag = undefined
          c.lane = undefined
          await this.#broker.cancel(tag, lane)
          // Held while pulls were busy; none is left to take them.
          for (const d of c.spare.splice(0)) settle(d.lane, d.msg, 'requeue')
        } else break
      }
    })()
      .catch((err: unknown) => this.#log.warn({ err: String((err as Error)?.message ?? err), queue: stageQueue(c.appId, c.handler) }, 'pipelines: a RabbitMQ consumer could not be changed; retried at the next reconnect'))
      .finally(() => {
        c.busy = false
        if (c.wanted === 0 && !c.tag) {
          for (const d of c.spare.splice(0)) settle(d.lane, d.msg, 'requeue')
          this.#consumers.delete(stageQueue(c.appId, c.handler))
        }
      })
  }

  /** After a (re)connect: consumers for every parked pull, and each pull claims from PostgreSQL (a message may have died with the channel). */
  #up(): void {
    for (const c of this.#consumers.values()) this.#reconcile(c)
    this.#relay.kick()
    this.#wakeAll(true)
  }

  /** The lane died with its deliveries (RabbitMQ requeues them): forget them, never ack them elsewhere. */
  #down(): void {
    for (const c of this.#consumers.values()) {
      c.tag = undefined
      c.lane = undefined
      c.spare = []
    }
    for (const w of this.#waiters) w.inbox = w.inbox.filter((d) => d.lane.alive)
  }

  #nudgeOne(except: Waiter): void {
    for (const w of this.#waiters) {
      if (w === except || w.nudged || w.appId !== except.appId || ![...w.handlers].some((h) => except.handlers.has(h))) continue
      w.nudged = true
      w.wake()
      return
    }
  }

  /** The periodic re-check (the first parked pull of each kind), or every pull after a reconnect. */
  #wakeAll(every = false): void {
    const seen = new Set<string>()
    for (const w of this.#waiters) {
      const kind = `${w.appId}\t${[...w.handlers].sort().join(',')}`
      if (!every && seen.has(kind)) continue
      seen.add(kind)
      w.nudged = true
      w.wake()
    }
  }
}
