import { afterEach, expect, it } from 'vitest'
import type { NodeProcess } from '@onepipe/testing'
import { runChaos } from './chaos.js'

const procs: NodeProcess[] = []
afterEach(() => {
  for (const p of procs.splice(0)) p.child.kill('SIGKILL')
})

it('PostgreSQL dispatch: 3 control planes, 4 workers x 8, 2,000 diamond pipelines, a worker and a control plane SIGKILLed: every pipeline completes, each stage ran once but for the killed worker\'s jobs, in dependency order, b and c in parallel', { timeout: 600_000 }, async () => {
  const r = await runChaos({ pipelines: Number(process.env.CHAOS_PIPELINES ?? 2000) }, procs)
  console.log(`chaos (postgres): ${JSON.stringify(r)}`)
  expect(r.duplicates).toBe(r.duplicatesByKilledWorker)
})
