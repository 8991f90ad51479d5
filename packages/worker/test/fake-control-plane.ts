import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

// A control plane of the worker protocol in memory, small enough to read: it lets
// the client's own tests pin what goes over the wire (batching, 409s, stop) with
// exact control, while worker.test.ts runs the real one end to end.

export interface FakeJob {
  executionId: string
  handler: string
  input: unknown
  attempt: number
  state: 'queued' | 'leased' | 'done'
  /** Answer renewals of this attempt with 409 and this code. */
  stale?: 'STALE_ATTEMPT' | 'JOB_CANCELLED'
  deadline?: string
}

export interface Call {
  path: string
  body: Record<string, unknown>
  auth: string
}

export class FakeControlPlane {
  readonly calls: Call[] = []
  readonly jobs: FakeJob[] = []
  readonly acks: Record<string, unknown>[] = []
  readonly logs: Record<string, unknown>[] = []
  apiKey = 'op_test_secret'
  heartbeatMs = 50
  leaseMs = 300
  maxWaitMs = 500
  drain = false
  /** Answers every pull with this status (401, 503…) while set. */
  pullStatus: number | undefined
  #server: Server
  #parked: { handlers: string[]; max: number; res: ServerResponse; timer: NodeJS.Timeout }[] = []
  #tokens = new Set<string>()
  url = ''

  constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res))
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r))
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
    return this
  }

  async stop(): Promise<void> {
    for (const p of this.#parked.splice(0)) {
      clearTimeout(p.timer)
      p.res.writeHead(204).end()
    }
    this.#server.closeAllConnections()
    await new Promise((r) => this.#server.close(r))
  }

  add(handler: string, input: unknown, o: Partial<FakeJob> = {}): FakeJob {
    const job: FakeJob = { executionId: randomUUID(), handler, input, attempt: 1, state: 'queued', ...o }
    this.jobs.push(job)
    this.#serveParked()
    return job
  }

  /** Revokes every session token, as a restarted control plane would. */
  endSessions(): void {
    this.#tokens.clear()
  }

  paths(): string[] {
    return this.calls.map((c) => c.path)
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = ''
    for await (const chunk of req) text += String(chunk)
    const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>
    const path = req.url ?? ''
    const auth = req.headers.authorization ?? `key ${String(req.headers['x-api-key'])}`
    this.calls.push({ path, body, auth })
    const send = (status: number, b?: unknown) => {
      if (b === undefined) res.writeHead(status).end()
      else res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(b))
    }
    const key = req.headers['x-api-key'] === this.apiKey
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '')
    if (path === '/workers/bootstrap') {
      if (!key) return send(401, { error: { code: 'UNAUTHORIZED', message: 'bad key', requestId: 'r1' } })
      const sessionToken = `ows_${randomUUID()}`
      this.#tokens.add(sessionToken)
      return send(201, { workerId: randomUUID(), sessionToken, heartbeatMs: this.heartbeatMs, leaseMs: this.leaseMs, maxWaitMs: this.maxWaitMs })
    }
    if (!key && !this.#tokens.has(token)) return send(401, { error: { code: 'UNAUTHORIZED', message: 'session ended' } })
    switch (path) {
      case '/workers/heartbeat':
        return send(200, { drain: this.drain })
      case '/workers/shutdown':
        this.#tokens.delete(token)
        return send(200, {})
      case '/logs':
        this.logs.push(body)
        return send(202)
      case '/jobs/pull': {
        if (this.pullStatus !== undefined) return send(this.pullStatus, { error: { code: 'NOPE', message: `status ${this.pullStatus}` } })
        const handlers = body.handlers as string[]
        const max = body.max as number
        const ready = this.#take(handlers, max)
        if (ready.length > 0) return send(200, { jobs: ready })
        const waitMs = Math.min(Number(body.waitMs ?? this.maxWaitMs), this.maxWaitMs)
        const parked = { handlers, max, res, timer: setTimeout(() => {
          this.#parked.splice(this.#parked.indexOf(parked), 1)
          send(204)
        }, waitMs) }
        this.#parked.push(parked)
        return
      }
      case '/jobs/lease/renew': {
        const job = this.jobs.find((j) => j.executionId === body.executionId)
        if (!job) return send(404, { error: { code: 'NOT_FOUND', message: 'no such attempt' } })
        if (job.stale) return send(409, { error: { code: job.stale, message: 'over' } })
        return send(200, { leaseExpiresAt: new Date(Date.now() + this.leaseMs).toISOString() })
      }
      case '/jobs/ack': {
        const list = (Array.isArray(body.acks) ? body.acks : [body]) as Record<string, unknown>[]
        const results = list.map((a) => {
          const job = this.jobs.find((j) => j.executionId === a.executionId)
          if (!job) return { executionId: a.executionId, status: 404 }
          if (job.stale || job.state !== 'leased') return { executionId: a.executionId, status: 409, error: { code: 'STALE_ATTEMPT', message: 'over' } }
          job.state = 'done'
          this.acks.push(a)
          return { executionId: a.executionId, status: 200 }
        })
        return Array.isArray(body.acks) ? send(200, { results }) : send(results[0]!.status, { stageStatus: 'Completed' })
      }
      default:
        return send(404, { error: { code: 'NOT_FOUND', message: path } })
    }
  }

  #take(handlers: string[], max: number): unknown[] {
    const out = []
    for (const j of this.jobs) {
      if (out.length >= max) break
      if (j.state !== 'queued' || !handlers.includes(j.handler)) continue
      j.state = 'leased'
      out.push({
        executionId: j.executionId, stageId: `s-${j.executionId}`, pipelineId: 'p1', stageName: j.handler, handler: j.handler,
        attempt: j.attempt, input: j.input, upstream: {}, context: {}, leaseMs: this.leaseMs,
        leaseExpiresAt: new Date(Date.now() + this.leaseMs).toISOString(), ...(j.deadline ? { deadline: j.deadline } : {}),
      })
    }
    return out
  }

  #serveParked(): void {
    for (const p of [...this.#parked]) {
      const ready = this.#take(p.handlers, p.max)
      if (ready.length === 0) continue
      clearTimeout(p.timer)
      this.#parked.splice(this.#parked.indexOf(p), 1)
      p.res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jobs: ready }))
    }
  }
}
