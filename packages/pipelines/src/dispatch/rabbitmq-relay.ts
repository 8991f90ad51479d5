// The outbox relay of one control plane, and what keeps the outbox trigger
// on: every replica relays (SKIP LOCKED splits the rows between them), so
// the outbox drains as long as one replica and the broker are up.
import type { Database, Logger } from '@onepipe/core'
import type { ConfirmChannel } from 'amqplib'
import { CHANGES_CHANNEL, type PipelineChange } from '../engine/engine.js'
import { stageQueue, type Broker } from './rabbitmq-broker.js'
import { claimOutbox, deleteOutbox, releaseChangesOwner, renewSettings } from './rabbitmq-sql.js'

/** The NOTIFY channel (schema-scoped) the outbox trigger wakes relays on. */
export const OUTBOX_CHANNEL = 'onepipe_pipeline_outbox'
const FINAL = new Set(['Completed', 'Failed', 'Skipped', 'Cancelled'])

/**
 * Publishes outbox rows with publisher confirms and deletes them in the
 * transaction that locked them. A publish that fails (a nack, a timeout, a
 * channel or connection that closed before the confirm) rolls the
 * transaction back: the rows stay and are published again, by this relay
 * after the reconnect or by another replica's. A row published twice is
 * harmless: the claim it causes is by stage id and status.
 *
 * @example
 * ```ts
 * const relay = new OutboxRelay(db, broker, log, 'cp-1')
 * await relay.start()
 * ```
 */
export class OutboxRelay {
  readonly #db: Database
  readonly #broker: Broker
  readonly #log: Logger
  readonly #me: string
  readonly #batch: number
  readonly #sweepMs: number
  readonly #leaseMs: number
  #running: Promise<void> | undefined
  #again = false
  #ownsChanges = false
  #timers: NodeJS.Timeout[] = []
  #unlisten: (() => Promise<void>)[] = []
  #stopped = false
  /** @internal Tests: runs after a batch is published, before its confirms are awaited. */
  beforeConfirm: ((ch: ConfirmChannel) => void) | undefined

  constructor(db: Database, broker: Broker, log: Logger, me: string, o: { batch?: number; sweepMs?: number; leaseMs?: number } = {}) {
    this.#db = db
    this.#broker = broker
    this.#log = log
    this.#me = me
    this.#batch = o.batch ?? 500
    this.#sweepMs = o.sweepMs ?? 1000
    this.#leaseMs = o.leaseMs ?? 60_000
  }

  /** Turns the outbox trigger on, listens for its NOTIFY and for changes, and drains what is there. */
  async start(): Promise<void> {
    await this.#renew()
    this.#unlisten.push(await this.#db.listen(OUTBOX_CHANNEL, () => this.kick(), { onReconnect: () => this.kick() }))
    this.#unlisten.push(await this.#db.listen(CHANGES_CHANNEL, (p) => this.#changed(p)))
    // The sweep covers a NOTIFY that was lost and rows left by a relay that died mid-batch.
    this.#timers.push(setInterval(() => this.kick(), this.#sweepMs))
    this.#timers.push(setInterval(() => void this.#renew(), Math.max(1000, this.#leaseMs / 12)))
    for (const t of this.#timers) t.unref()
    this.kick()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    for (const t of this.#timers) clearInterval(t)
    this.#timers = []
    for (const u of this.#unlisten) await u().catch(() => undefined)
    this.#unlisten = []
    await this.#running
    if (this.#ownsChanges) await releaseChangesOwner(this.#db, this.#me).catch(() => undefined)
  }

  async #renew(): Promise<void> {
    try {
      this.#ownsChanges = await renewSettings(this.#db, this.#db.channel(OUTBOX_CHANNEL), this.#me, this.#leaseMs)
    } catch (err) {
      this.#log.warn({ err }, 'pipelines: renewing the RabbitMQ dispatch lease failed; retrying')
    }
  }

  /** Drains the outbox now (after a NOTIFY, a reconnect, or on the sweep). */
  kick(): void {
    if (this.#stopped || !this.#broker.up) return
    if (this.#running) {
      this.#again = true
      return
    }
    this.#running = this.#drain().finally(() => (this.#running = undefined))
  }

  /** Resolves when the outbox is drained as far as this relay can now (tests). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running
  }

  async #drain(): Promise<void> {
    try {
      for (;;) {
        this.#again = false
        const n = await this.#publishBatch()
        if (this.#stopped || !this.#broker.up || (n < this.#batch && !this.#again)) return
      }
    } catch (err) {
      // Rolled back: the rows stay, and the reconnect or the next sweep publishes them again.
      this.#log.warn({ err: String((err as Error)?.message ?? err) }, 'pipelines: publishing the outbox failed; its rows stay and are published again')
    }
  }

  async #publishBatch(): Promise<number> {
    return this.#db.transaction(async (tx) => {
      const rows = await claimOutbox(tx, this.#batch)
      if (rows.length === 0) return 0
      for (const q of new Set(rows.map((r) => stageQueue(r.app_id, r.handler)))) await this.#broker.declare(q)
      const unroutable = await this.#broker.publishStages(rows, this.beforeConfirm)
      for (const r of rows) if (unroutable.has(r.id)) this.#broker.undeclare(stageQueue(r.app_id, r.handler))
      // A returned message stays in the outbox: its queue is declared again and it goes out with the next batch.
      await deleteOutbox(
        tx,
        rows.filter((r) => !unroutable.has(r.id)).map((r) => r.id),
      )
      if (unroutable.size > 0) this.#again = true
      return rows.length
    })
  }

  /** Live updates: the one replica holding the lease forwards each change to the fanout. */
  #changed(payload: string): void {
    if (!this.#ownsChanges) return
    let c: PipelineChange
    try {
      c = JSON.parse(payload) as PipelineChange
    } catch {
      return
    }
    const final = (c.stageStatus !== undefined && FINAL.has(c.stageStatus)) || (c.pipelineStatus !== undefined && FINAL.has(c.pipelineStatus))
    this.#broker.publishChange(payload, final)
  }
}
