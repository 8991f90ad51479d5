// The worker client against an in-memory control plane of the protocol, to pin
// exactly what goes over the wire: acks batched, 409s honoured, stop() handing
// jobs back, sessions replaced, drain, deadlines, backoff.
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { spawnNode, waitFor } from '@onepipe/testing'
import { ConfigError, JobAbortedError, TerminalError, Worker, WorkerAuthError, type WorkerBuilder, type WorkerLogger } from '../src/index.js'
import { FakeControlPlane } from './fake-control-plane.js'

let cp: FakeControlPlane
const workers: Worker[] = []
const lines: string[] = []
const logger: WorkerLogger = {
  debug: (m) => lines.push(`debug ${m}`),
  info: (m) => lines.push(`info ${m}`),
  warn: (m) => lines.push(`warn ${m}`),
  error: (m) => lines.push(`error ${m}`),
}

function worker(name = 'w'): WorkerBuilder {
  return Worker.create(name).url(cp.url).apiKey(cp.apiKey).logger(logger)
}
async function started(b: WorkerBuilder): Promise<Worker> {
  const w = b.build()
  workers.push(w)
  await w.start()
  return w
}
interface SeenAck {
  status: string
  output?: unknown
  error?: { message: string; code?: string; name: string; retryable: boolean; details?: unknown }
}
const ackOf = (id: string) => cp.acks.find((a) => a.executionId === id) as SeenAck | undefined

beforeEach(async () => {
  cp = await new FakeControlPlane().start()
  lines.length = 0
})
afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop({ timeoutMs: 0 })
  await cp.stop()
})

describe('worker client (protocol)', () => {
  it('runs jobs, sends outputs, logs and context, and batches acks that finish together', async () => {
    const w = await started(
      worker()
        .handle('t.double', async (job, ctx) => {
          ctx.log.info('doubling', { n: (job.input as { n: number }).n, at: new Date(0) })
          ctx.setContext(`seen${(job.input as { n: number }).n}`, true)
          return { n: (job.input as { n: number }).n * 2 }
        })
        .concurrency(40),
    )
    const jobs = Array.from({ length: 40 }, (_, n) => cp.add('t.double', { n }))
    await waitFor(() => cp.acks.length === 40, { what: '40 acks' })
    expect(ackOf(jobs[7]!.executionId)).toMatchObject({
      status: 'completed',
      output: { n: 14 },
      logs: [{ level: 'info', message: 'doubling', fields: { n: 7, at: '1970-01-01T00:00:00.000Z' } }],
      context: { seen7: true },
    })
    const ackCalls = cp.calls.filter((c) => c.path === '/jobs/ack')
    expect(ackCalls.length).toBeLessThan(40)
    expect(ackCalls.every((c) => Array.isArray(c.body.acks) && c.auth.startsWith('Bearer ows_'))).toBe(true)
    const pull = cp.calls.find((c) => c.path === '/jobs/pull')!
    expect(pull.body).toMatchObject({ handlers: ['t.double'], max: 40, workerId: w.workerId })
    const hb = await waitFor(() => cp.calls.find((c) => c.path === '/workers/heartbeat'))
    expect(hb.body).toMatchObject({ workerId: w.workerId, inFlight: expect.any(Number), cpu: expect.any(Number), memoryBytes: expect.any(Number), lagMs: expect.any(Number) })
  })

  it('reports failures: TerminalError for good, other errors to retry, bad outputs naming the path', async () => {
    await started(
      worker()
        .handle('t.terminal', () => {
          throw new TerminalError('CARD_DECLINED', 'declined')
        })
        .handle('t.flaky', () => {
          throw Object.assign(new Error('boom'), { code: 'ECONNRESET' })
        })
        .handle('t.nan', () => ({ deep: { x: NaN } }))
        .handle('t.long', () => {
          throw new Error(`long ${'x'.repeat(20_000)}\u0000`)
        })
        .concurrency(4),
    )
    const [a, b, c, d] = [cp.add('t.terminal', null), cp.add('t.flaky', null), cp.add('t.nan', null), cp.add('t.long', null)]
    await waitFor(() => cp.acks.length === 4)
    // The protocol's limit is 8192 characters: a longer message is cut rather than have the ack refused.
    expect(ackOf(d.executionId)!.error!.message.length).toBeLessThanOrEqual(8192)
    expect(ackOf(d.executionId)!.error!.message).toMatch(/^long x+… \(cut\)$/)
    expect(ackOf(a.executionId)).toMatchObject({ status: 'failed', error: { code: 'CARD_DECLINED', message: 'declined', name: 'TerminalError', retryable: false } })
    expect(ackOf(b.executionId)).toMatchObject({ status: 'failed', error: { code: 'ECONNRESET', message: 'boom', name: 'Error', retryable: true } })
    expect(ackOf(c.executionId)).toMatchObject({ status: 'failed', error: { code: 'INVALID_OUTPUT', retryable: false } })
    expect(ackOf(c.executionId)!.error!.message).toContain('deep.x')
    expect(ackOf(c.executionId)!.error!.details).toMatchObject({ issues: [{ path: 'deep.x' }] })
  })

  it('a 409 on renewal aborts ctx.signal and sends no ack', async () => {
    let reason: unknown
    await started(
      worker().handle('t.wait', (_job, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => {
        reason = ctx.signal.reason
        resolve({ late: true })
      }))),
    )
    const job = cp.add('t.wait', null)
    await waitFor(() => cp.calls.some((c) => c.path === '/jobs/lease/renew'), { what: 'a renewal' })
    job.stale = 'JOB_CANCELLED'
    await waitFor(() => reason !== undefined, { what: 'the abort' })
    expect(reason).toBeInstanceOf(JobAbortedError)
    expect((reason as JobAbortedError).code).toBe('JOB_CANCELLED')
    await new Promise((r) => setTimeout(r, 30))
    expect(cp.acks).toEqual([])
    expect(cp.calls.some((c) => c.path === '/jobs/ack')).toBe(false)
  })

  it('aborts the signal at the stage deadline', async () => {
    let reason: unknown
    await started(worker().handle('t.slow', (_job, ctx) => new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject((reason = ctx.signal.reason) as Error)))))
    const job = cp.add('t.slow', null, { deadline: new Date(Date.now() + 150).toISOString() })
    await waitFor(() => ackOf(job.executionId))
    expect((reason as JobAbortedError).code).toBe('DEADLINE_EXCEEDED')
    expect(ackOf(job.executionId)).toMatchObject({ status: 'failed', error: { code: 'DEADLINE_EXCEEDED', retryable: true } })
  })

  it('stop() lets running jobs finish, hands back those that do not in time, then shuts down', async () => {
    const seen: string[] = []
    const w = await started(
      worker()
        .handle('t.quick', () => new Promise((r) => setTimeout(() => r('done'), 50)))
        .handle('t.stuck', (_job, ctx) => new Promise((r) => ctx.signal.addEventListener('abort', () => r(seen.push('aborted')))))
        .concurrency(2),
    )
    const quick = cp.add('t.quick', null)
    const stuck = cp.add('t.stuck', null)
    await waitFor(() => w.inFlight === 2)
    await w.stop({ timeoutMs: 300 })
    expect(w.state).toBe('stopped')
    expect(ackOf(quick.executionId)).toMatchObject({ status: 'completed', output: 'done' })
    expect(ackOf(stuck.executionId)).toEqual({ executionId: stuck.executionId, status: 'released' })
    expect(seen).toEqual(['aborted'])
    expect(cp.paths().at(-1)).toBe('/workers/shutdown')
    const pulls = cp.calls.filter((c) => c.path === '/jobs/pull').length
    cp.add('t.quick', null)
    await new Promise((r) => setTimeout(r, 50))
    expect(cp.calls.filter((c) => c.path === '/jobs/pull').length).toBe(pulls)
  })

  it('a refused API key rejects start(); a missing one is a ConfigError naming ONEPIPE_API_KEY', async () => {
    const w = Worker.create('bad').url(cp.url).apiKey('op_bad_key').handle('t.x', () => 1).logger(logger).build()
    await expect(w.start()).rejects.toBeInstanceOf(WorkerAuthError)
    await expect(Worker.create('bad').url(cp.url).apiKey('op_bad_key').handle('t.x', () => 1).logger(logger).build().start()).rejects.toMatchObject({ code: 'WORKER_UNAUTHORIZED', status: 401 })
    const saved = process.env.ONEPIPE_API_KEY
    delete process.env.ONEPIPE_API_KEY
    try {
      expect(() => Worker.create('nokey').handle('t.x', () => 1).build()).toThrow(ConfigError)
      expect(() => Worker.create('nokey').handle('t.x', () => 1).build()).toThrow(/ONEPIPE_API_KEY/)
    } finally {
      if (saved !== undefined) process.env.ONEPIPE_API_KEY = saved
    }
  })

  it('bootstraps again when the session ends, and stops with an error when the key is refused too', async () => {
    const errors: Error[] = []
    const w = await started(worker().handle('t.one', () => 1))
    w.on('error', (e) => errors.push(e))
    const first = w.workerId
    cp.endSessions()
    const job = cp.add('t.one', null)
    await waitFor(() => ackOf(job.executionId))
    expect(w.workerId).not.toBe(first)
    cp.apiKey = 'op_rotated_key'
    cp.endSessions()
    await waitFor(() => w.state === 'stopped', { what: 'the worker to stop' })
    expect(errors[0]).toBeInstanceOf(WorkerAuthError)
  })

  it('honours drain from heartbeats, and backs off on 5xx without stopping', async () => {
    const w = await started(worker().handle('t.d', () => 1).pollWait(100))
    cp.drain = true
    await waitFor(() => w.draining)
    // A pull parked before the drain is left to finish (pollWait 100 ms); then none is made.
    await new Promise((r) => setTimeout(r, 200))
    const pullsWhileDraining = cp.calls.filter((c) => c.path === '/jobs/pull').length
    const job = cp.add('t.d', null)
    await new Promise((r) => setTimeout(r, 200))
    expect(cp.calls.filter((c) => c.path === '/jobs/pull').length).toBe(pullsWhileDraining)
    expect(job.state).toBe('queued')
    cp.drain = false
    await waitFor(() => ackOf(job.executionId), { what: 'the job after the drain' })
    cp.pullStatus = 503
    await waitFor(() => lines.filter((l) => l.includes('answered 503')).length >= 2)
    cp.pullStatus = undefined
    const again = cp.add('t.d', null)
    await waitFor(() => ackOf(again.executionId), { what: 'a job after the 503s' })
    expect(w.state).toBe('running')
  })

  it('with handleSignals(), SIGTERM hands running jobs back, shuts down and lets the process exit', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/signals.mjs', import.meta.url))
    const p = spawnNode(fixture, [], { ONEPIPE_WORKERS_URL: cp.url, ONEPIPE_API_KEY: cp.apiKey })
    try {
      await p.waitFor(/ready/)
      const job = cp.add('t.sig', null)
      await waitFor(() => job.state === 'leased')
      p.kill('SIGTERM')
      expect(await p.exited).toBe(0)
      expect(ackOf(job.executionId)).toEqual({ executionId: job.executionId, status: 'released' })
      expect(cp.paths().at(-1)).toBe('/workers/shutdown')
    } finally {
      if (p.child.exitCode === null) p.kill('SIGKILL')
    }
  })
})
