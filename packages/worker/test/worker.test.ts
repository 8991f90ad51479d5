// The TypeScript worker against the real control plane, end to end: pipelines
// created over the API run stage after stage on workers that only speak HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '@onepipe/testing'
import { JobAbortedError, TerminalError, Worker, type WorkerLogger } from '../src/index.js'
import { stage, startPlane, type Plane } from './control-plane.js'

let plane: Plane
let worker: Worker
const seenAttempts: number[] = []
const timedOut: { reason: unknown; afterMs: number }[] = []
const lines: string[] = []
const logger: WorkerLogger = {
  debug: () => {},
  info: (m) => lines.push(`info ${m}`),
  warn: (m) => lines.push(`warn ${m}`),
  error: (m) => lines.push(`error ${m}`),
}

beforeAll(async () => {
  plane = await startPlane()
  worker = Worker.create('e2e')
    .url(plane.url)
    .apiKey(plane.key)
    .logger(logger)
    .concurrency(4)
    .handle('e2e.extract', (job, ctx) => {
      const { text } = job.input as { text: string }
      ctx.log.info('extracting', { chars: text.length })
      ctx.setContext('source', 'e2e')
      return { words: text.split(' ') }
    })
    .handle('e2e.transform', (job) => {
      const words = (job.upstream.extract?.output as { words: string[] }).words
      return { words: words.map((w) => w.toUpperCase()) }
    })
    .handle('e2e.load', (job) => {
      const words = (job.upstream.transform?.output as { words: string[] }).words
      return { line: words.join('-'), source: job.context.source }
    })
    .handle('e2e.terminal', () => {
      throw new TerminalError('BAD_PLAN', 'the plan cannot be priced')
    })
    .handle('e2e.flaky', (_job, ctx) => {
      seenAttempts.push(ctx.attempt)
      if (ctx.attempt === 1) throw new Error('first attempt fails')
      return { attempt: ctx.attempt }
    })
    .handle('e2e.slow', (job, ctx) => new Promise((_resolve, reject) => {
      const began = Date.now()
      ctx.signal.addEventListener('abort', () => {
        timedOut.push({ reason: ctx.signal.reason, afterMs: Date.now() - began })
        reject(ctx.signal.reason as Error)
      })
      if (job.deadline === undefined) reject(new Error('no deadline'))
    }))
    .build()
  await worker.start()
})

afterAll(async () => {
  await worker?.stop({ timeoutMs: 1000 })
  await plane?.stop()
})

describe('TypeScript worker end to end', () => {
  it('runs a three-stage pipeline, each stage seeing the outputs before it and the context', async () => {
    const id = await plane.run({
      name: 'words',
      input: {},
      stages: [
        { stageName: 'extract', stageHandlerName: 'e2e.extract', input: { text: 'one two three' } },
        { stageName: 'transform', stageHandlerName: 'e2e.transform', options: { dependsOn: ['extract'] } },
        { stageName: 'load', stageHandlerName: 'e2e.load', options: { dependsOn: ['transform'] } },
      ],
    })
    const p = await plane.finished(id)
    expect(p.status).toBe('Completed')
    expect(stage(p, 'extract').output).toEqual({ words: ['one', 'two', 'three'] })
    expect(stage(p, 'load').output).toEqual({ line: 'ONE-TWO-THREE', source: 'e2e' })
    expect(p.context).toMatchObject({ source: 'e2e' })
    expect(p.stages.map((s) => s.status)).toEqual(['Completed', 'Completed', 'Completed'])
  })

  it('a TerminalError fails the stage at once, whatever its retries', async () => {
    const id = await plane.run({
      name: 'terminal',
      stages: [
        { stageName: 'price', stageHandlerName: 'e2e.terminal', options: { maxRetries: 3, retryInterval: 10 } },
        { stageName: 'after', stageHandlerName: 'e2e.load', options: { dependsOn: ['price'] } },
      ],
    })
    const p = await plane.finished(id)
    expect(p.status).toBe('Failed')
    expect(stage(p, 'price').status).toBe('Failed')
    expect(stage(p, 'price').attempts).toBe(1)
    expect(JSON.stringify(stage(p, 'price').error ?? stage(p, 'price').raw)).toContain('BAD_PLAN')
    expect(stage(p, 'after').status).not.toBe('Completed')
  })

  it('another error is retried by the stage policy: attempt 2 completes', async () => {
    const id = await plane.run({ name: 'flaky', stages: [{ stageName: 'flaky', stageHandlerName: 'e2e.flaky', options: { maxRetries: 2, retryInterval: 10, backoff: 'fixed' } }] })
    const p = await plane.finished(id)
    expect(p.status).toBe('Completed')
    expect(stage(p, 'flaky').output).toEqual({ attempt: 2 })
    expect(seenAttempts).toEqual([1, 2])
  })

  it("a stage's timeout aborts ctx.signal at its deadline", async () => {
    const id = await plane.run({ name: 'timeout', stages: [{ stageName: 'slow', stageHandlerName: 'e2e.slow', options: { timeOut: 300 } }] })
    const p = await plane.finished(id)
    expect(p.status).toBe('Failed')
    expect(timedOut).toHaveLength(1)
    expect(timedOut[0]!.reason).toBeInstanceOf(JobAbortedError)
    expect((timedOut[0]!.reason as JobAbortedError).code).toBe('DEADLINE_EXCEEDED')
    expect(timedOut[0]!.afterMs).toBeGreaterThan(150)
    expect(timedOut[0]!.afterMs).toBeLessThan(5000)
  })

  it('stop() hands a job it cannot finish back at once, and another worker completes it', async () => {
    let aborted = false
    const first = Worker.create('stuck')
      .url(plane.url)
      .apiKey(plane.key)
      .logger(logger)
      .handle('e2e.stuck', (_job, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve((aborted = true)))))
      .build()
    await first.start()
    // No retries: a job handed back (released) must not spend one.
    const id = await plane.run({ name: 'drain', stages: [{ stageName: 'slow', stageHandlerName: 'e2e.stuck' }] })
    await waitFor(() => first.inFlight === 1, { what: 'the first worker to take the job' })
    const began = Date.now()
    await first.stop({ timeoutMs: 200 })
    expect(aborted).toBe(true)
    expect(first.state).toBe('stopped')
    // Handed back, not left to its lease: another worker gets it at once, as the same attempt.
    const second = Worker.create('rescuer').url(plane.url).apiKey(plane.key).logger(logger).handle('e2e.stuck', (job) => ({ attempt: job.attempt })).build()
    await second.start()
    try {
      const p = await plane.finished(id)
      expect(p.status).toBe('Completed')
      expect(stage(p, 'slow').output).toEqual({ attempt: 1 })
      expect(Date.now() - began).toBeLessThan(15_000)
    } finally {
      await second.stop({ timeoutMs: 1000 })
    }
  })

  it('the control plane refused nothing the workers sent', () => {
    // The one warning expected is stop() handing back the stuck job.
    expect(lines.filter((l) => !l.startsWith('info') && !l.includes('still running after 200 ms'))).toEqual([])
  })
})
