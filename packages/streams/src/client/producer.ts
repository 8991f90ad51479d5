import { isRetryable } from '@onepipe/core'
import type { StreamsClient } from './index.js'

/** Options of {@link IdempotentProducer}. */
export interface ProducerOptions {
  /** Stable producer id (one per writer process/role). */
  id: string
  /**
   * Epoch: each incarnation of a producer id must use a higher one; older
   * ones are then fenced (403). Default `Date.now()`, which rises across
   * restarts.
   */
  epoch?: number
  /** Most messages per request. Default 1000. */
  maxBatch?: number
  /** First retry delay after a transport failure, doubled up to 2 s. Default 50 ms. */
  retryDelayMs?: number
  /** Give up after this many consecutive transport failures. Default 20. */
  maxRetries?: number
}

interface Pending {
  value: unknown
  resolve: (offset: string) => void
  reject: (err: unknown) => void
}

/**
 * Exactly-once appends to one JSON stream. Messages are queued; while one
 * request is in flight the next ones gather into a single batch (one POST,
 * one `Producer-Seq`). A batch that fails on the network is re-sent with the
 * SAME seq, so the server applies it once even if the first attempt landed.
 * `append` resolves with the stream offset after the message's batch.
 *
 * @example
 * ```ts
 * const p = client.producer('flows/orders', { id: `api-${instanceId}` })
 * await Promise.all(orders.map((o) => p.append(o)))
 * ```
 */
export class IdempotentProducer {
  readonly #client: StreamsClient
  readonly #name: string
  readonly #id: string
  readonly #epoch: number
  readonly #maxBatch: number
  readonly #retryDelayMs: number
  readonly #maxRetries: number
  #seq = 0
  #queue: Pending[] = []
  #sending: Promise<void> | undefined

  constructor(client: StreamsClient, name: string, options: ProducerOptions) {
    this.#client = client
    this.#name = name
    this.#id = options.id
    this.#epoch = options.epoch ?? Date.now()
    this.#maxBatch = options.maxBatch ?? 1000
    this.#retryDelayMs = options.retryDelayMs ?? 50
    this.#maxRetries = options.maxRetries ?? 20
  }

  /** Queues one message; resolves with the offset after its batch once durable. */
  append(value: unknown): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ value, resolve, reject })
      this.#sending ??= this.#drain().finally(() => {
        this.#sending = undefined
      })
    })
  }

  /** Resolves when everything queued so far was sent. */
  async flush(): Promise<void> {
    while (this.#sending) await this.#sending
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch)
      const seq = this.#seq
      try {
        const offset = await this.#send(batch, seq)
        this.#seq = seq + 1
        for (const p of batch) p.resolve(offset)
      } catch (err) {
        // A rejected batch did not consume its seq; later batches reuse it.
        for (const p of batch) p.reject(err)
      }
    }
  }

  async #send(batch: Pending[], seq: number): Promise<string> {
    let delay = this.#retryDelayMs
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#client.appendBatch(
          this.#name,
          batch.map((p) => p.value),
          { producer: { id: this.#id, epoch: this.#epoch, seq } },
        )
      } catch (err) {
        if (!isRetryable(err) || attempt >= this.#maxRetries) throw err
        await new Promise((r) => setTimeout(r, delay))
        delay = Math.min(2_000, delay * 2)
      }
    }
  }
}
