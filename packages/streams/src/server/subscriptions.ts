import { randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import { OnePipeError } from '@onepipe/core'
import { ZERO_OFFSET, isOffset } from '../stores/types.js'
import type { StreamEngine } from './engine.js'
import { STREAM_PREFIX } from './headers.js'
import { respond, type Reply } from './reply.js'
import type { StreamRequest } from './request.js'
import { WebhookSigner } from './signing.js'

/**
 * The protocol's reserved subscription API under `/v1/stream/__ds/`: a
 * subscription watches streams (by glob pattern and/or explicit list) and
 * "wakes" a consumer when they have data past its acknowledged offsets —
 * either by POSTing a signed webhook, or (pull-wake) by appending a wake
 * event to a stream that workers follow and then claiming a lease.
 *
 * One wake is outstanding per subscription; it is fenced by a
 * `(wake_id, generation, token)` triple, so acks from an older wake get 409
 * FENCED. Subscriptions live in this server's memory: they are not shared by
 * several servers on one store.
 */

type LinkType = 'explicit' | 'glob'

interface Link {
  types: Set<LinkType>
  tail: string
  acked: string | undefined
}

interface Subscription {
  id: string
  type: 'webhook' | 'pull-wake'
  pattern: string | undefined
  webhookUrl: string | undefined
  wakeStream: string | undefined
  leaseTtlMs: number
  description: string | undefined
  /** Canonical form of the creating request, for idempotent re-PUT. */
  config: string
  origin: string
  links: Map<string, Link>
  generation: number
  wakeId: string | undefined
  token: string | undefined
  holder: string | undefined
  /** Pull-wake: a wake event was appended and not yet claimed. */
  wakePosted: boolean
  snapshot: Map<string, string>
  timer: NodeJS.Timeout | undefined
}

class SubscriptionError extends OnePipeError {
  readonly extra: Record<string, unknown>
  constructor(status: number, code: string, message: string, extra: Record<string, unknown> = {}) {
    super(code, message, { status })
    this.extra = extra
  }
}

const json = (status: number, body: unknown): Reply => respond(status, { 'content-type': 'application/json' }, JSON.stringify(body))
const fail = (err: SubscriptionError): Reply => json(err.status, { error: { code: err.code, message: err.message, ...err.extra } })
const newId = () => randomBytes(12).toString('base64url')
const pending = (l: Link) => l.tail > (l.acked ?? ZERO_OFFSET)

/** Glob over `/`-separated names: `*` is one segment, `**` any number. */
function globMatch(pattern: string, path: string): boolean {
  const p = pattern.split('/')
  const s = path.split('/')
  const go = (i: number, j: number): boolean => {
    if (i === p.length) return j === s.length
    if (p[i] === '**') return go(i + 1, j) || (j < s.length && go(i, j + 1))
    if (j === s.length) return false
    const re = new RegExp(`^${(p[i] as string).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`)
    return re.test(s[j] as string) && go(i + 1, j + 1)
  }
  return go(0, 0)
}

/** Refuses webhook targets in private networks (SSRF); loopback stays allowed for local development. */
function checkWebhookUrl(raw: unknown): string {
  let url: URL
  try {
    url = new URL(String(raw))
  } catch {
    throw new SubscriptionError(400, 'WEBHOOK_URL_REJECTED', 'webhook.url must be an absolute http(s) URL.')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SubscriptionError(400, 'WEBHOOK_URL_REJECTED', 'webhook.url must use http or https.')
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const v4 = isIP(host) === 4 ? host.split('.').map(Number) : undefined
  const privateV4 =
    v4 !== undefined &&
    (v4[0] === 10 || v4[0] === 0 || (v4[0] === 172 && (v4[1] ?? 0) >= 16 && (v4[1] ?? 0) <= 31) || (v4[0] === 192 && v4[1] === 168) || (v4[0] === 169 && v4[1] === 254) || (v4[0] === 100 && (v4[1] ?? 0) >= 64 && (v4[1] ?? 0) <= 127))
  const privateV6 = isIP(host) === 6 && /^(fc|fd|fe80)/i.test(host)
  if (privateV4 || privateV6) throw new SubscriptionError(400, 'WEBHOOK_URL_REJECTED', `webhook.url ${url.host} is in a private network.`)
  return url.toString()
}

export class Subscriptions {
  readonly #engine: StreamEngine
  readonly #signer = new WebhookSigner()
  readonly #subs = new Map<string, Subscription>()
  #shutdown = new AbortController()

  constructor(engine: StreamEngine) {
    this.#engine = engine
  }

  /** Handles `/v1/stream/__ds/<segments…>`. */
  async handle(req: StreamRequest, segments: string[], body: () => Promise<Uint8Array>): Promise<Reply> {
    try {
      const [kind, id, action, ...rest] = segments
      if (kind === 'jwks.json' && segments.length === 1 && req.method === 'GET') {
        return respond(200, { 'content-type': 'application/jwk-set+json' }, JSON.stringify(this.#signer.jwks()))
      }
      if (kind !== 'subscriptions' || !id) throw new SubscriptionError(404, 'NOT_FOUND', 'Unknown reserved path.')
      const readJson = async (): Promise<Record<string, unknown>> => {
        try {
          const v: unknown = JSON.parse(Buffer.from(await body()).toString('utf8') || '{}')
          if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object')
          return v as Record<string, unknown>
        } catch {
          throw new SubscriptionError(400, 'INVALID_REQUEST', 'Body must be a JSON object.')
        }
      }
      if (action === undefined) {
        if (req.method === 'PUT') return await this.#create(id, await readJson(), req.url.origin)
        if (req.method === 'GET') return json(200, this.#view(this.#get(id)))
        if (req.method === 'DELETE') {
          const sub = this.#get(id)
          clearTimeout(sub.timer)
          this.#subs.delete(id)
          return respond(204, {})
        }
      } else if (action === 'streams') {
        const sub = this.#get(id)
        if (req.method === 'POST' && rest.length === 0) {
          const streams = (await readJson()).streams
          if (!Array.isArray(streams) || !streams.every((s) => typeof s === 'string')) throw new SubscriptionError(400, 'INVALID_REQUEST', 'streams must be an array of stream paths.')
          for (const s of streams) await this.#link(sub, s, 'explicit')
          return respond(204, {})
        }
        if (req.method === 'DELETE' && rest.length === 1) {
          const link = sub.links.get(rest[0] as string)
          link?.types.delete('explicit')
          if (link && link.types.size === 0) sub.links.delete(rest[0] as string)
          return respond(204, {})
        }
      } else if (req.method === 'POST' && rest.length === 0) {
        const sub = this.#get(id)
        if (action === 'callback' || action === 'ack') return this.#ack(sub, req, await readJson(), action === 'ack')
        if (action === 'claim') return this.#claim(sub, await readJson())
        if (action === 'release') return this.#release(sub, req, await readJson())
      }
      throw new SubscriptionError(404, 'NOT_FOUND', 'Unknown subscription operation.')
    } catch (err) {
      if (err instanceof SubscriptionError) return fail(err)
      throw err
    }
  }

  /** Called after a stream gained data: link it to matching subscriptions and wake them. */
  onAppend(path: string, tail: string): void {
    for (const sub of this.#subs.values()) {
      if (sub.pattern && globMatch(sub.pattern, path)) {
        const link = sub.links.get(path) ?? { types: new Set<LinkType>(), tail, acked: undefined }
        link.types.add('glob')
        sub.links.set(path, link)
      }
      const link = sub.links.get(path)
      if (!link) continue
      if (tail > link.tail) link.tail = tail
      this.#maybeWake(sub)
    }
  }

  /** Called after a stream was deleted. */
  onDelete(path: string): void {
    for (const sub of this.#subs.values()) sub.links.delete(path)
  }

  /** Stops timers and in-flight webhook calls (the server is stopping; it may start again). */
  close(): void {
    this.#shutdown.abort()
    this.#shutdown = new AbortController()
    for (const sub of this.#subs.values()) this.#endWake(sub)
  }

  #get(id: string): Subscription {
    const sub = this.#subs.get(id)
    if (!sub) throw new SubscriptionError(404, 'SUBSCRIPTION_NOT_FOUND', `No subscription "${id}".`)
    return sub
  }

  async #create(id: string, input: Record<string, unknown>, origin: string): Promise<Reply> {
    const type = input.type
    if (type !== 'webhook' && type !== 'pull-wake') throw new SubscriptionError(400, 'INVALID_REQUEST', 'type must be "webhook" or "pull-wake".')
    const pattern = typeof input.pattern === 'string' && input.pattern !== '' ? input.pattern : undefined
    const streams = input.streams ?? []
    if (!Array.isArray(streams) || !streams.every((s) => typeof s === 'string')) throw new SubscriptionError(400, 'INVALID_REQUEST', 'streams must be an array of stream paths.')
    if (!pattern && streams.length === 0) throw new SubscriptionError(400, 'INVALID_REQUEST', 'Give a pattern or a list of streams.')
    const webhook = input.webhook as { url?: unknown } | undefined
    const webhookUrl = type === 'webhook' ? checkWebhookUrl(webhook?.url) : undefined
    const wakeStream = typeof input.wake_stream === 'string' && input.wake_stream !== '' ? input.wake_stream : undefined
    if (type === 'pull-wake' && !wakeStream) throw new SubscriptionError(400, 'INVALID_REQUEST', 'pull-wake subscriptions need wake_stream.')
    const leaseTtlMs = typeof input.lease_ttl_ms === 'number' && input.lease_ttl_ms > 0 ? input.lease_ttl_ms : 30_000
    const description = typeof input.description === 'string' ? input.description : undefined
    const config = JSON.stringify([type, pattern, [...(streams)].sort(), webhookUrl, wakeStream, leaseTtlMs, description])
    const existing = this.#subs.get(id)
    if (existing) {
      if (existing.config !== config) throw new SubscriptionError(409, 'SUBSCRIPTION_EXISTS', `Subscription "${id}" exists with a different configuration.`)
      return json(200, this.#view(existing))
    }
    const sub: Subscription = {
      id, type, pattern, webhookUrl, wakeStream, leaseTtlMs, description, config, origin,
      links: new Map(), generation: 0, wakeId: undefined, token: undefined, holder: undefined, wakePosted: false, snapshot: new Map(), timer: undefined,
    }
    this.#subs.set(id, sub)
    for (const s of streams) await this.#link(sub, s, 'explicit')
    return json(201, this.#view(sub))
  }

  async #link(sub: Subscription, path: string, type: LinkType): Promise<void> {
    let link = sub.links.get(path)
    if (!link) {
      // Data already in the stream counts as delivered: a subscription sees what comes after it.
      const tail = await this.#engine.head(path).then((m) => m.nextOffset, () => ZERO_OFFSET)
      link = { types: new Set(), tail, acked: tail }
      sub.links.set(path, link)
    }
    link.types.add(type)
  }

  #view(sub: Subscription): Record<string, unknown> {
    return {
      id: sub.id,
      type: sub.type,
      ...(sub.pattern ? { pattern: sub.pattern } : {}),
      ...(sub.description !== undefined ? { description: sub.description } : {}),
      lease_ttl_ms: sub.leaseTtlMs,
      ...(sub.wakeStream ? { wake_stream: sub.wakeStream } : {}),
      ...(sub.webhookUrl
        ? { webhook: { url: sub.webhookUrl, signing: { alg: 'ed25519', kid: this.#signer.kid, jwks_url: `${sub.origin}${STREAM_PREFIX}__ds/jwks.json` } } }
        : {}),
      generation: sub.generation,
      ...(sub.holder ? { holder: sub.holder } : {}),
      streams: [...sub.links].map(([path, l]) => ({
        path,
        link_type: l.types.has('explicit') ? 'explicit' : 'glob',
        tail_offset: l.tail,
        ...(l.acked !== undefined ? { acked_offset: l.acked } : {}),
        has_pending: pending(l),
      })),
    }
  }

  #pendingStreams(sub: Subscription): { path: string; tail_offset: string; acked_offset?: string; has_pending: boolean }[] {
    return [...sub.links]
      .filter(([, l]) => pending(l))
      .map(([path, l]) => ({ path, tail_offset: l.tail, ...(l.acked !== undefined ? { acked_offset: l.acked } : {}), has_pending: true }))
  }

  #startWake(sub: Subscription): void {
    sub.generation++
    sub.wakeId = newId()
    sub.token = newId()
    sub.snapshot = new Map([...sub.links].filter(([, l]) => pending(l)).map(([p, l]) => [p, l.tail]))
    clearTimeout(sub.timer)
    // An unacknowledged wake expires with its lease and is sent again.
    sub.timer = setTimeout(() => {
      this.#endWake(sub)
      this.#maybeWake(sub)
    }, sub.leaseTtlMs)
    sub.timer.unref()
  }

  #endWake(sub: Subscription): void {
    clearTimeout(sub.timer)
    sub.timer = undefined
    sub.wakeId = undefined
    sub.token = undefined
    sub.holder = undefined
    sub.snapshot = new Map()
  }

  #maybeWake(sub: Subscription): void {
    if (sub.wakeId || sub.wakePosted) return
    if (![...sub.links.values()].some(pending)) return
    if (sub.type === 'pull-wake') {
      sub.wakePosted = true
      const event = { subscription_id: sub.id, streams: this.#pendingStreams(sub).map((s) => s.path), at: new Date().toISOString() }
      this.#engine
        .append(sub.wakeStream as string, { body: Buffer.from(JSON.stringify(event)), close: false, contentType: 'application/json' })
        .then((r) => this.onAppend(sub.wakeStream as string, r.nextOffset))
        .catch((err: unknown) => {
          sub.wakePosted = false
          console.error(`[onepipe streams] subscription ${sub.id}: could not append to wake stream ${sub.wakeStream}`, err)
        })
      return
    }
    this.#startWake(sub)
    void this.#deliver(sub, sub.generation)
  }

  async #deliver(sub: Subscription, generation: number): Promise<void> {
    const body = JSON.stringify({
      subscription_id: sub.id,
      wake_id: sub.wakeId,
      generation,
      callback_url: `${sub.origin}${STREAM_PREFIX}__ds/subscriptions/${encodeURIComponent(sub.id)}/callback`,
      callback_token: sub.token,
      streams: this.#pendingStreams(sub),
    })
    try {
      const res = await fetch(sub.webhookUrl as string, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'webhook-signature': this.#signer.signature(body) },
        body,
        signal: AbortSignal.any([this.#shutdown.signal, AbortSignal.timeout(10_000)]),
      })
      const reply = (await res.json().catch(() => ({}))) as { done?: unknown }
      // A receiver that answers { done: true } handled the whole snapshot synchronously.
      if (res.ok && reply.done === true && sub.generation === generation && this.#subs.get(sub.id) === sub) {
        for (const [path, tail] of sub.snapshot) {
          const link = sub.links.get(path)
          if (link && (link.acked === undefined || tail > link.acked)) link.acked = tail
        }
        this.#endWake(sub)
        this.#maybeWake(sub)
      }
    } catch (err) {
      if (!this.#shutdown.signal.aborted) console.error(`[onepipe streams] subscription ${sub.id}: webhook delivery failed; retrying when the lease ends`, err)
    }
  }

  #fence(sub: Subscription, req: StreamRequest | undefined, input: Record<string, unknown>): void {
    if (req) {
      const auth = req.headers.get('authorization') ?? ''
      const token = auth.startsWith('Bearer ') ? auth.slice(7) : ''
      if (!token) throw new SubscriptionError(401, 'UNAUTHORIZED', 'Send the wake token as "Authorization: Bearer <token>".')
      if (token !== sub.token) throw new SubscriptionError(409, 'FENCED', 'This wake token is no longer current.')
    }
    if (!sub.wakeId || input.wake_id !== sub.wakeId || input.generation !== sub.generation) {
      throw new SubscriptionError(409, 'FENCED', 'This wake was superseded; wait for the next one.')
    }
  }

  #ack(sub: Subscription, req: StreamRequest, input: Record<string, unknown>, pull: boolean): Reply {
    if (pull !== (sub.type === 'pull-wake')) throw new SubscriptionError(400, 'INVALID_REQUEST', `Use ${sub.type === 'pull-wake' ? 'ack' : 'callback'} for this subscription.`)
    this.#fence(sub, req, input)
    const acks = input.acks ?? []
    if (!Array.isArray(acks)) throw new SubscriptionError(400, 'INVALID_REQUEST', 'acks must be an array.')
    for (const a of acks as { stream?: unknown; offset?: unknown }[]) {
      if (typeof a.stream !== 'string' || typeof a.offset !== 'string' || !isOffset(a.offset)) {
        throw new SubscriptionError(400, 'INVALID_REQUEST', 'Each ack needs a stream path and an offset.')
      }
      const link = sub.links.get(a.stream)
      if (!link) throw new SubscriptionError(400, 'INVALID_REQUEST', `Stream "${a.stream}" is not part of subscription "${sub.id}".`)
      if (link.acked === undefined || a.offset > link.acked) link.acked = a.offset
    }
    let nextWake = false
    if (input.done === true) {
      this.#endWake(sub)
      nextWake = [...sub.links.values()].some(pending)
      if (nextWake) {
        // Let the answer go out first, then wake again for what is left.
        setImmediate(() => this.#maybeWake(sub))
      }
    } else {
      this.#extend(sub)
    }
    return json(200, { ok: true, next_wake: nextWake })
  }

  #extend(sub: Subscription): void {
    if (!sub.timer) return
    sub.timer.refresh()
  }

  #claim(sub: Subscription, input: Record<string, unknown>): Reply {
    if (sub.type !== 'pull-wake') throw new SubscriptionError(400, 'INVALID_REQUEST', 'Only pull-wake subscriptions are claimed.')
    const worker = typeof input.worker === 'string' && input.worker !== '' ? input.worker : undefined
    if (!worker) throw new SubscriptionError(400, 'INVALID_REQUEST', 'worker is required.')
    if (sub.holder) throw new SubscriptionError(409, 'ALREADY_CLAIMED', `Claimed by "${sub.holder}".`, { current_holder: sub.holder })
    sub.wakePosted = false
    this.#startWake(sub)
    sub.holder = worker
    return json(200, {
      subscription_id: sub.id,
      wake_id: sub.wakeId,
      generation: sub.generation,
      token: sub.token,
      lease_ttl_ms: sub.leaseTtlMs,
      streams: this.#pendingStreams(sub),
    })
  }

  #release(sub: Subscription, req: StreamRequest, input: Record<string, unknown>): Reply {
    if (sub.type !== 'pull-wake') throw new SubscriptionError(400, 'INVALID_REQUEST', 'Only pull-wake subscriptions are released.')
    this.#fence(sub, req, input)
    this.#endWake(sub)
    this.#maybeWake(sub)
    return respond(204, {})
  }
}
