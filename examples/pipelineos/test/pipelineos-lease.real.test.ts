import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '@onepipe/testing'
import { localFixtures } from '../src/ai/local.js'
import { png, startPipelineOS, type BlueprintView, type Harness } from './harness.js'

interface PipelineView {
  status: string
  stages: { name: string; status: string; attempts: { outcome: string | null; workerId: string | null }[] }[]
}

describe('PipelineOS: a worker killed in the middle of an analysis', () => {
  let h: Harness

  beforeAll(async () => {
    h = await startPipelineOS()
  })
  afterAll(async () => {
    for (const p of (await h?.close()) ?? []) expect(p.code, `${p.name}: ${p.output.slice(-2000)}`).toBe(0)
  })

  const blueprint = (id: string) => h.json<BlueprintView>(`/api/blueprints/${id}`, { as: 'viewer' })

  it('loses its lease (kill -9), and another worker analyses the blueprint', async () => {
    // This one takes ten minutes per blueprint, as a slow model might.
    const slow = await h.startWorker({ LOCAL_PROVIDER_DELAY_MS: '600000' })
    const bytes = png(`blueprint of level 2, ${randomBytes(8).toString('hex')}`)
    const res = await h.upload(bytes, 'level-2.png', 'estimator')
    expect(res.status).toBe(201)
    const { id } = (await res.json()) as BlueprintView
    await waitFor(async () => (await blueprint(id)).status === 'analyzing', { timeoutMs: 30_000, intervalMs: 100, what: 'the slow worker to take the job' })
    slow.kill('SIGKILL')
    expect(await slow.exited).toBe('SIGKILL')

    await h.startWorker()
    // The stage comes back once the dead worker's lease (30 s) runs out, to the worker that is left.
    const done = await waitFor(
      async () => {
        const b = await blueprint(id)
        return b.status === 'analyzed' && b
      },
      { timeoutMs: 75_000, intervalMs: 250, what: 'the other worker to analyse the blueprint' },
    )
    expect(done.fixtures).toEqual(localFixtures(bytes))
    const pipeline = await h.json<PipelineView>(`/__onepipe/pipelines/${done.pipelineId}`, { as: 'admin' })
    expect(pipeline.status).toBe('Completed')
    expect(pipeline.stages[0]?.attempts.map((a) => a.outcome)).toEqual(['lease_expired', 'completed'])
  })
})
