import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { Cron, Database, silentLogger, Workflow, WorkflowEngine } from '@onepipe/sdk'
import { spawnNode, waitFor } from '@onepipe/testing'

const holder = fileURLToPath(new URL('./fixtures/holder.mjs', import.meta.url))

// An embedded folder is locked to one process, so leases found in it when a
// process opens it belong to a process that is gone: they are taken over at
// once, not after their 30 s timeouts (which on PostgreSQL tell a dead
// instance from a slow one).
describe('restarting on the embedded default after kill -9', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onepipe-held-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it("takes over the killed process's workflow run and cron lease at once", { timeout: 120_000 }, async () => {
    const p = spawnNode(holder, [], { DIR: dir, NEVER: '1' })
    await p.waitFor(/holding/, 60_000)
    p.kill('SIGKILL')
    await p.exited

    const db = Database.create('held').pglite(dir).build()
    const wf = Workflow.create('held').db(db).define(async (ctx) => ctx.step('slow', () => 'quick now')).build()
    // The default lease timeout (30 s) is longer than the wait below: only the takeover at open can finish the run in time.
    const engine = new WorkflowEngine({ db, workflows: [wf], logger: silentLogger })
    const job = Cron.create('held').schedule('0 0 1 1 *').db(db).handler(() => undefined).build()
    try {
      await engine.start()
      await job.start()
      const run = await waitFor(async () => {
        const r = await wf.get('held-run')
        return r?.status === 'completed' && r
      }, { timeoutMs: 20_000, what: 'the run of the killed process to complete here' })
      expect(run.output).toBe('quick now')
      const info = await waitFor(async () => {
        const i = await job.info()
        return i.lease?.live && i.lease.holder === i.instanceId && i
      }, { timeoutMs: 20_000, what: 'the cron lease to pass to this process' })
      expect(info.lease?.live).toBe(true)
    } finally {
      await job.stop()
      await engine.stop()
      await db.close()
    }
  })
})
