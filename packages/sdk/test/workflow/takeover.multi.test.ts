// The takeover bound, with real processes: a run whose owner was killed
// (SIGKILL) or paused (SIGSTOP) is taken over at most `staleAfter` + the scan
// interval (`poll`) after the owner's last heartbeat. Both instants come from
// the database clock: the last `heartbeat_at` the owner wrote, and the
// survivor's first step of the run (a row stamped `now()`). The margin is for
// a loaded machine; the bound itself is what docs/workflows.md promises.
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import type { Database } from '@onepipe/sdk'
import { spawnNode, testDatabase, waitFor, type NodeProcess } from '@onepipe/testing'
// @ts-expect-error -- a plain JS fixture shared with the worker processes
import { apps } from './fixtures/apps.mjs'

const worker = fileURLToPath(new URL('./fixtures/worker.mjs', import.meta.url))
const STALE_AFTER = 2000
const HEARTBEAT = 500
const POLL = 1000
const MARGIN = 5000
let db: Database
let schema: string
let url: string | undefined
let cleanup: () => Promise<void>
let procs: NodeProcess[] = []
let holder: { start(i?: unknown, o?: { workflowId?: string }): Promise<{ workflowId: string }> }

beforeAll(async () => {
  ;({ db, schema, url, cleanup } = await testDatabase())
  await db.execute('CREATE TABLE effects (run_id text NOT NULL, step text NOT NULL, pid int NOT NULL, at timestamptz NOT NULL DEFAULT now())')
  ;({ holder } = apps(db) as { holder: typeof holder })
})
afterEach(async () => {
  for (const p of procs) {
    p.kill('SIGCONT')
    p.kill('SIGKILL')
  }
  await Promise.all(procs.map((p) => p.exited))
  procs = []
})
afterAll(async () => {
  await cleanup()
})

async function startWorker(): Promise<NodeProcess> {
  const p = spawnNode(worker, [], { DATABASE_URL: url ?? '', SCHEMA: schema, HEARTBEAT: String(HEARTBEAT), STALE_AFTER: String(STALE_AFTER), POLL: String(POLL) })
  procs.push(p)
  await p.waitFor(/READY/)
  return p
}

it.each(['SIGKILL', 'SIGSTOP'] as const)(`runs of an owner stopped by %s are taken over within staleAfter (${STALE_AFTER} ms) + scan interval (${POLL} ms) of its last heartbeat`, { timeout: 120_000 }, async (sig) => {
  const victim = await startWorker()
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push((await holder.start(undefined, { workflowId: `${sig}-${i}` })).workflowId)
  await waitFor(async () => (await db.query('SELECT DISTINCT run_id FROM effects WHERE pid = $1 AND run_id = ANY($2)', [victim.pid, ids])).length === ids.length, {
    timeoutMs: 30_000,
    what: 'the victim to hold every run',
  })
  const survivor = await startWorker()
  victim.kill(sig)
  // The victim's last heartbeats. One still in flight at the signal may land after this read:
  // then the figure below counts from an older beat, which only makes the check stricter.
  const beats = new Map((await db.query<{ workflow_id: string; heartbeat_at: Date }>('SELECT workflow_id, heartbeat_at FROM _onepipe_workflows WHERE workflow_id = ANY($1)', [ids])).map((r) => [r.workflow_id, r.heartbeat_at]))
  const taken = await waitFor(
    async () => {
      const rows = await db.query<{ run_id: string; at: Date }>('SELECT run_id, min(at) AS at FROM effects WHERE pid = $1 AND run_id = ANY($2) GROUP BY run_id', [survivor.pid, ids])
      return rows.length === ids.length && rows
    },
    { timeoutMs: 60_000, intervalMs: 50, what: 'the survivor to take every run over' },
  )
  const after = taken.map((t) => t.at.getTime() - beats.get(t.run_id)!.getTime())
  console.log(`${sig}: taken over ${Math.min(...after)}–${Math.max(...after)} ms after the last heartbeat (bound ${STALE_AFTER + POLL} ms)`)
  for (const ms of after) {
    expect(ms).toBeGreaterThanOrEqual(STALE_AFTER)
    expect(ms).toBeLessThanOrEqual(STALE_AFTER + POLL + MARGIN)
  }
})
