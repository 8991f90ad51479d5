// The Python example worker (standard library only) against the real control
// plane: `python3 worker.py` as a user runs it, a three-stage pipeline end to
// end, and a clean stop on SIGTERM.
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawnCommand, type NodeProcess } from '@onepipe/testing'
import { stage, startPlane, type Plane } from '../../../packages/worker/test/control-plane.js'

const script = fileURLToPath(new URL('../python/worker.py', import.meta.url))
let plane: Plane
let py: NodeProcess | undefined

beforeAll(async () => {
  plane = await startPlane()
})

afterAll(async () => {
  if (py && py.child.exitCode === null) {
    py.kill('SIGKILL')
    await py.exited
  }
  await plane?.stop()
})

describe('Python worker', () => {
  it('runs a three-stage pipeline end to end and stops cleanly on SIGTERM', async () => {
    py = spawnCommand('python3', [script], { ONEPIPE_WORKERS_URL: plane.url, ONEPIPE_API_KEY: plane.key, ONEPIPE_STOP_TIMEOUT_MS: '2000', PYTHONUNBUFFERED: '1' })
    await py.waitFor(/onepipe-python-worker: started/, 90_000)
    const id = await plane.run({
      name: 'python',
      context: { customer: 'acme' },
      stages: [
        { stageName: 'upper', stageHandlerName: 'py.upper', input: { text: 'stream first backends' } },
        { stageName: 'count', stageHandlerName: 'py.count', options: { dependsOn: ['upper'] } },
        { stageName: 'join', stageHandlerName: 'py.join', input: { separator: ' / ' }, options: { dependsOn: ['upper', 'count'] } },
      ],
    })
    const p = await plane.finished(id)
    expect(p.status, py.output()).toBe('Completed')
    expect(stage(p, 'upper').output).toEqual({ text: 'STREAM FIRST BACKENDS' })
    expect(stage(p, 'count').output).toEqual({ text: 'STREAM FIRST BACKENDS', words: 3 })
    expect(stage(p, 'join').output).toEqual({
      joined: 'count={"text":"STREAM FIRST BACKENDS","words":3} / upper={"text":"STREAM FIRST BACKENDS"}',
      stages: 2,
      words: 3,
    })
    expect(p.context).toMatchObject({ customer: 'acme', words: 3 })

    // A stage the handler refuses for good (no text anywhere) fails at once.
    const bad = await plane.run({ name: 'python-bad', stages: [{ stageName: 'upper', stageHandlerName: 'py.upper', input: { nothing: true }, options: { maxRetries: 3, retryInterval: 10 } }] })
    const failed = await plane.finished(bad)
    expect(failed.status).toBe('Failed')
    expect(stage(failed, 'upper').attempts).toBe(1)
    expect(JSON.stringify(stage(failed, 'upper').error ?? stage(failed, 'upper').raw)).toContain('NO_TEXT')

    py.kill('SIGTERM')
    expect(await py.exited).toBe(0)
    expect(py.output()).toMatch(/onepipe-python-worker: stopped/)
  })
})
