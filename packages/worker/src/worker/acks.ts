import { WorkerHttpError } from '../errors/index.js'
import type { HttpAnswer } from '../http/client.js'
import { parseAckResults } from '../http/protocol.js'
import type { AckText } from './job.js'
import { backoffMs, sleep } from './backoff.js'
import type { WorkerLogger } from './logger.js'

/**
 * How many acks go in one `POST /jobs/ack` at most (32).
 *
 * @example
 * ```ts
 * const callsAtLeast = Math.ceil(jobs / ACK_BATCH_MAX)
 * ```
 */
export const ACK_BATCH_MAX = 32
/**
 * How long a finished job's ack waits for others to share its call, in ms (5).
 *
 * @example
 * ```ts
 * await new Promise((r) => setTimeout(r, ACK_LINGER_MS * 2)) // the ack has gone out by now
 * ```
 */
export const ACK_LINGER_MS = 5
// Well below the 1 MiB + 16 KiB body limit once the envelope is added; a larger single ack goes alone.
const BATCH_BYTES = 768 * 1024
const MAX_TRIES = 6

type Post = (path: string, body: () => string, o?: { timeoutMs?: number }) => Promise<HttpAnswer>

/**
 * Groups the acks of jobs that finish close together into one
 * `{ acks: [...] }` call: at most {@link ACK_LINGER_MS} later, or at once
 * when {@link ACK_BATCH_MAX} are waiting. A worker running many short jobs
 * then makes one call for many results instead of one each.
 */
export class AckBatcher {
  readonly #post: Post
  readonly #log: WorkerLogger
  #queue: AckText[] = []
  #bytes = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  readonly #inFlight = new Set<Promise<void>>()

  constructor(post: Post, log: WorkerLogger) {
    this.#post = post
    this.#log = log
  }

  push(ack: AckText): void {
    if (this.#bytes + ack.text.length > BATCH_BYTES) this.flush()
    this.#queue.push(ack)
    this.#bytes += ack.text.length
    if (this.#queue.length >= ACK_BATCH_MAX) this.flush()
    else this.#timer ??= setTimeout(() => this.flush(), ACK_LINGER_MS)
  }

  /** Sends what is waiting now. */
  flush(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#queue.length === 0) return
    const batch = this.#queue
    this.#queue = []
    this.#bytes = 0
    const p = this.#deliver(batch).catch((e: unknown) => this.#log.error('acks could not be sent; their stages come back when the leases run out', { error: String(e), executionIds: batch.map((a) => a.executionId) }))
    this.#inFlight.add(p)
    void p.finally(() => this.#inFlight.delete(p))
  }

  /** Sends what is waiting and resolves when every call made so far has its answer. */
  async drain(): Promise<void> {
    this.flush()
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight])
  }

  async #deliver(batch: AckText[]): Promise<void> {
    const body = () => `{"acks":[${batch.map((a) => a.text).join(',')}]}`
    for (let tries = 1; ; tries++) {
      let r: HttpAnswer
      try {
        r = await this.#post('/jobs/ack', body, { timeoutMs: 30_000 })
      } catch (e) {
        if (tries >= MAX_TRIES) throw e
        this.#log.warn('ack call failed; trying again', { error: e instanceof Error ? e.message : String(e), tries })
        await sleep(backoffMs(tries))
        continue
      }
      if (r.status === 200) return this.#results(batch, r)
      if ((r.status === 429 || r.status >= 500) && tries < MAX_TRIES) {
        await sleep(r.retryAfterMs ?? backoffMs(tries))
        continue
      }
      // One refused ack must not sink the others: send them one by one, to learn which.
      if (batch.length > 1 && (r.status === 400 || r.status === 413)) {
        await Promise.all(batch.map((a) => this.#deliver([a])))
        return
      }
      const only = batch.length === 1 ? batch[0] : undefined
      if (only !== undefined && (r.status === 409 || r.status === 404)) return this.#stale(only.executionId, r.status)
      if (only?.fallback && (r.status === 400 || r.status === 413)) return this.#deliver([{ executionId: only.executionId, text: only.fallback(errorText(r.body, r.status)) }])
      throw new WorkerHttpError('POST /jobs/ack', r.status, r.body)
    }
  }

  async #results(batch: AckText[], r: HttpAnswer): Promise<void> {
    const byId = new Map(batch.map((a) => [a.executionId, a]))
    const retry: Promise<void>[] = []
    for (const res of parseAckResults(r.body)) {
      if (res.status === 200) continue
      if (res.status === 409 || res.status === 404) {
        this.#stale(res.executionId, res.status)
        continue
      }
      const ack = byId.get(res.executionId)
      const why = res.error?.message ?? `status ${res.status}`
      if (ack?.fallback && (res.status === 400 || res.status === 413)) retry.push(this.#deliver([{ executionId: ack.executionId, text: ack.fallback(why) }]))
      else this.#log.error('the control plane refused an ack', { executionId: res.executionId, status: res.status, error: why })
    }
    await Promise.all(retry)
  }

  // The attempt ended before its ack (lease lost, timeout, cancel, superseded): the control plane has moved on.
  #stale(executionId: string, status: number): void {
    this.#log.debug('ack of an attempt that is over dropped', { executionId, status })
  }
}

function errorText(body: unknown, status: number): string {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error
  if (e && typeof e.message === 'string') return typeof e.code === 'string' ? `${e.code}: ${e.message}` : e.message
  return typeof body === 'string' ? body : `HTTP ${status}`
}
