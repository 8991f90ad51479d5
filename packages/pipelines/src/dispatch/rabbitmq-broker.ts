// The AMQP side of RabbitMQ dispatch: one connection per control plane with
// a confirm channel to publish on and a channel to consume on, the topology,
// and reconnecting. Any channel or connection that closes takes the whole
// connection down with it: pending confirms fail (the outbox rows stay),
// deliveries of the dead channel are never acked on a new one, and the
// owner re-creates its consumers when `onUp` runs again.
import { ConfigError, type Logger } from '@onepipe/core'
import { connect, type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib'

/** Live updates: every PipelineChange, for subscribers outside the control plane. */
export const UPDATES_EXCHANGE = 'onepipe.pipeline.updates'
/** Where messages rejected too often go, routed to `{queue}.dlq`. */
export const DEAD_LETTER_EXCHANGE = 'onepipe.pipeline.dlx'
/** Final outcomes of stages and pipelines, kept (bounded) for systems outside OnePipe. */
export const RESULTS_QUEUE = 'onepipe.pipeline.results'
/** A message redelivered this many times (requeued, or its channel died) goes to the dead-letter queue. */
export const DELIVERY_LIMIT = 20

/**
 * The durable queue of one handler of one application.
 *
 * @example
 * ```ts
 * stageQueue('9c…', 'vision.analyze') // '9c….stage.vision.analyze'
 * ```
 */
export function stageQueue(appId: string, handler: string): string {
  return `${appId}.stage.${handler}`
}

/**
 * A consume channel of one connection: a delivery is acked only on the
 * lane it came from, and only while that lane is alive.
 *
 * @example
 * ```ts
 * if (lane.alive) lane.ch.ack(msg)
 * ```
 */
export interface Lane {
  readonly ch: Channel
  alive: boolean
}

/** What a publish of stage messages answers: outbox ids the broker could not route (their queue is gone). */
export type Unroutable = Set<number>

/**
 * One AMQP connection that comes back by itself. `onUp` runs after every
 * (re)connect with the topology declared; `onDown` when it is lost.
 *
 * @example
 * ```ts
 * const b = new Broker(url, log, { onUp: () => resume(), onDown: () => pause() })
 * await b.start()
 * ```
 */
export class Broker {
  readonly #url: string
  readonly #log: Logger
  readonly #on: { onUp: () => void; onDown: () => void }
  #conn: ChannelModel | undefined
  #pub: ConfirmChannel | undefined
  #lane: Lane | undefined
  /** Stage queues declared on this connection (declared again after a reconnect). */
  #declared = new Set<string>()
  #returned = new Set<number>()
  #stopped = false
  #retryMs = 0
  #timer: NodeJS.Timeout | undefined
  #connecting: Promise<void> | undefined
  readonly confirmTimeoutMs: number

  constructor(url: string, log: Logger, on: { onUp: () => void; onDown: () => void }, o: { confirmTimeoutMs?: number } = {}) {
    this.#url = url
    this.#log = log
    this.#on = on
    this.confirmTimeoutMs = o.confirmTimeoutMs ?? 10_000
  }

  /** Whether a connection with its channels is up. */
  get up(): boolean {
    return this.#lane?.alive === true
  }

  /** The consume channel of the current connection. */
  get lane(): Lane | undefined {
    return this.#lane
  }

  /**
   * Connects once. Refused credentials are a configuration error; a broker
   * that is down is not (pulls are served from PostgreSQL meanwhile): it is
   * retried with backoff.
   */
  async start(): Promise<void> {
    try {
      await this.#connect()
    } catch (err) {
      if (isAuthError(err)) throw new ConfigError('PIPELINES_RABBITMQ_REFUSED', `RabbitMQ refused the credentials of RABBITMQ_URL: ${(err as Error).message}`)
      this.#log.warn({ err }, 'pipelines: RabbitMQ is not reachable; dispatching from PostgreSQL until it is')
      this.#schedule()
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#connecting?.catch(() => undefined)
    const conn = this.#conn
    this.#drop()
    await conn?.close().catch(() => undefined)
  }

  #connect(): Promise<void> {
    this.#connecting ??= (async () => {
      const conn = await connect(withHeartbeat(this.#url), { clientProperties: { connection_name: 'onepipe-pipelines' } })
      try {
        conn.on('error', (err: unknown) => this.#log.warn({ err }, 'pipelines: RabbitMQ connection error'))
        conn.on('close', () => this.#lost(conn, 'connection closed'))
        const pub = await conn.createConfirmChannel()
        const sub = await conn.createChannel()
        for (const ch of [pub, sub]) {
          ch.on('error', (err: unknown) => this.#log.warn({ err }, 'pipelines: RabbitMQ channel error'))
          ch.on('close', () => this.#lost(conn, 'channel closed'))
        }
        // A mandatory message no queue took comes back before its confirm.
        pub.on('return', (m: ConsumeMessage) => {
          const id = Number(m.properties.messageId)
          if (Number.isFinite(id)) this.#returned.add(id)
        })
        await pub.assertExchange(DEAD_LETTER_EXCHANGE, 'direct', { durable: true })
        await pub.assertExchange(UPDATES_EXCHANGE, 'fanout', { durable: true })
        await pub.assertQueue(RESULTS_QUEUE, { durable: true, arguments: { 'x-max-length': 100_000, 'x-overflow': 'drop-head' } })
        if (this.#stopped) throw new Error('stopped while connecting')
        this.#conn = conn
        this.#pub = pub
        this.#lane = { ch: sub, alive: true }
        this.#retryMs = 0
      } catch (err) {
        await conn.close().catch(() => undefined)
        throw err
      }
    })().finally(() => (this.#connecting = undefined))
    return this.#connecting.then(() => {
      this.#log.info({}, 'pipelines: RabbitMQ connected')
      this.#on.onUp()
    })
  }

  #lost(conn: ChannelModel, why: string): void {
    if (conn !== this.#conn) return
    this.#drop()
    // One dead channel is the whole connection lost: closing it drops the other channel's deliveries too.
    conn.close().catch(() => undefined)
    this.#log.warn({ why }, 'pipelines: RabbitMQ lost; reconnecting')
    this.#on.onDown()
    this.#schedule()
  }

  #drop(): void {
    if (this.#lane) this.#lane.alive = false
    this.#conn = undefined
    this.#pub = undefined
    this.#lane = undefined
    this.#declared.clear()
  }

  #schedule(): void {
    if (this.#stopped || this.#timer) return
    this.#retryMs = Math.min(5000, Math.max(250, this.#retryMs * 2))
    const ms = this.#retryMs / 2 + Math.random() * (this.#retryMs / 2)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.#stopped) return
      this.#connect().catch((err: unknown) => {
        this.#log.warn({ err: String((err as Error)?.message ?? err) }, 'pipelines: RabbitMQ reconnect failed; retrying')
        this.#schedule()
      })
    }, ms)
    this.#timer.unref()
  }

  /**
   * Declares the durable quorum queue of a handler (once per connection):
   * quorum queues count redeliveries, so a message rejected
   * {@link DELIVERY_LIMIT} times is dead-lettered to `{queue}.dlq`.
   */
  async declare(queue: string): Promise<void> {
    const pub = this.#pub
    if (!pub) throw new Error('RabbitMQ is not connected')
    if (this.#declared.has(queue)) return
    await pub.assertQueue(`${queue}.dlq`, { durable: true })
    await pub.bindQueue(`${queue}.dlq`, DEAD_LETTER_EXCHANGE, queue)
    await pub.assertQueue(queue, {
      durable: true,
      arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': DELIVERY_LIMIT, 'x-dead-letter-exchange': DEAD_LETTER_EXCHANGE, 'x-dead-letter-routing-key': queue },
    })
    if (pub === this.#pub) this.#declared.add(queue)
  }

  /**
   * Publishes stage messages (persistent, body `{ stageId }`) and waits for
   * every confirm. Rejects when a confirm fails, times out, or the channel
   * closes first: the caller's transaction rolls back and its outbox rows
   * are published again. Answers the ids no queue took.
   */
  async publishStages(rows: readonly { id: number; app_id: string; handler: string; stage_id: string }[], beforeConfirm?: (ch: ConfirmChannel) => void): Promise<Unroutable> {
    const pub = this.#pub
    if (!pub) throw new Error('RabbitMQ is not connected')
    for (const r of rows) this.#returned.delete(r.id)
    const confirms = rows.map(
      (r) =>
        new Promise<void>((resolve, reject) => {
          pub.publish('', stageQueue(r.app_id, r.handler), Buffer.from(JSON.stringify({ stageId: r.stage_id })), { persistent: true, mandatory: true, messageId: String(r.id), contentType: 'application/json' }, (err) =>
            err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(),
          )
        }),
    )
    beforeConfirm?.(pub)
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`RabbitMQ did not confirm within ${this.confirmTimeoutMs} ms`)), this.confirmTimeoutMs)
    })
    try {
      await Promise.race([Promise.all(confirms), timeout])
    } finally {
      clearTimeout(timer)
      // Settled or not, none of these may reject unheard.
      for (const c of confirms) c.catch(() => undefined)
    }
    const unroutable = new Set<number>()
    for (const r of rows) if (this.#returned.delete(r.id)) unroutable.add(r.id)
    return unroutable
  }

  /** Forgets that a queue was declared (it was deleted under us): the next publish declares it again. */
  undeclare(queue: string): void {
    this.#declared.delete(queue)
  }

  /**
   * Publishes a live update to the fanout, and a final outcome to the
   * results queue too. Best effort: a lost update is not re-sent (the
   * state is in PostgreSQL).
   */
  publishChange(body: string, final: boolean): void {
    const pub = this.#pub
    if (!pub) return
    try {
      const content = Buffer.from(body)
      pub.publish(UPDATES_EXCHANGE, '', content, { contentType: 'application/json' }, () => undefined)
      if (final) pub.sendToQueue(RESULTS_QUEUE, content, { persistent: true, contentType: 'application/json' }, () => undefined)
    } catch (err) {
      this.#log.debug({ err }, 'pipelines: a live update was not published')
    }
  }

  /** Starts a consumer on the current lane; undefined when the broker is down. */
  async consume(queue: string, prefetch: number, fn: (m: ConsumeMessage | null, lane: Lane) => void): Promise<{ tag: string; lane: Lane } | undefined> {
    const lane = this.#lane
    if (!lane?.alive) return undefined
    await this.declare(queue)
    // Per consumer (global false): each handler's consumer gets its own window.
    await lane.ch.prefetch(prefetch, false)
    const { consumerTag } = await lane.ch.consume(queue, (m) => fn(m, lane), { noAck: false })
    return { tag: consumerTag, lane }
  }

  /** Cancels a consumer if its lane is still alive (a dead lane's consumers are gone already). */
  async cancel(tag: string, lane: Lane): Promise<void> {
    if (!lane.alive) return
    await lane.ch.cancel(tag)
  }
}

function withHeartbeat(url: string): string {
  if (/[?&]heartbeat=/.test(url)) return url
  return `${url}${url.includes('?') ? '&' : '?'}heartbeat=10`
}

function isAuthError(err: unknown): boolean {
  const m = String((err as Error)?.message ?? '')
  return /ACCESS_REFUSED|403/.test(m)
}

/**
 * Acks or rejects a delivery on the lane it came from; a delivery of a dead
 * lane is left alone (RabbitMQ has requeued it already).
 *
 * @example
 * ```ts
 * settle(lane, msg, 'ack')
 * ```
 */
export function settle(lane: Lane, m: ConsumeMessage, how: 'ack' | 'requeue' | 'reject'): void {
  if (!lane.alive) return
  try {
    if (how === 'ack') lane.ch.ack(m)
    else lane.ch.nack(m, false, how === 'requeue')
  } catch {
    // The channel closed between the check and the call: its deliveries are requeued by the broker.
  }
}
