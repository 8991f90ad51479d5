import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Database } from '@onepipe/sdk'
import { spawnNode, testDatabase, uniqueName, waitFor, type NodeProcess } from '@onepipe/testing'

const fixture = fileURLToPath(new URL('./fixtures/ticker.mjs', import.meta.url))
let db: Database
let schema: string
let url: string | undefined
let cleanup: () => Promise<void>
const procs: NodeProcess[] = []

beforeAll(async () => {
  ;({ db, schema, url, cleanup } = await testDatabase())
  // Deliberately no unique constraint: duplicates must be visible.
  await db.execute('CREATE TABLE cron_effects (tick timestamptz NOT NULL, pid int NOT NULL)')
})
afterAll(async () => {
  for (const p of procs) {
    p.kill('SIGCONT')
    p.kill('SIGKILL')
  }
  await Promise.all(procs.map((p) => p.exited))
  await cleanup()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const TTL_MS = 3000
const RENEW_MS = 1000
const pidOf = (instance: string) => Number(instance.split(':').at(-2))

/**
 * Failover (documented in Cron): when the lease holder is SIGKILLed, ticks
 * falling due before its lease runs out (TTL) and the next holder notices
 * (≤ one renew interval) are run late by the next holder through catch-up,
 * so none is lost; the one tick the dead holder had claimed but not finished
 * (if any) is marked `abandoned` and not re-run, since running it again could
 * duplicate its effect. A holder that is only paused finishes its claimed
 * tick when it resumes (the real outcome replaces `abandoned`).
 *
 * So, exactly: every tick has one execution row; no tick's effect happens
 * twice; every tick is completed with exactly one effect, except at most one
 * per SIGKILL, abandoned, claimed by the killed process, with at most the one
 * effect that process made before it died.
 */
it('3 processes, 60 every-second ticks, holder SIGKILLed and the next SIGSTOPped past its lease: one execution per tick, no effect twice, all completed but at most the one tick the killed holder had claimed (abandoned)', { timeout: 180_000 }, async () => {
  const job = uniqueName('tick')
  const env = { DATABASE_URL: url ?? '', SCHEMA: schema, JOB: job, TTL_MS: String(TTL_MS), RENEW_MS: String(RENEW_MS) }
  const group = [0, 1, 2].map(() => spawnNode(fixture, [], env))
  procs.push(...group)
  await Promise.all(group.map((p) => p.waitFor(/READY/)))
  const holder = (): Promise<NodeProcess> =>
    waitFor(
      async () => {
        const [row] = await db.query<{ locked_by: string }>('SELECT locked_by FROM _onepipe_cron_locks WHERE job_name = $1 AND expires_at > now()', [job])
        return row ? group.find((g) => g.pid === pidOf(row.locked_by)) : undefined
      },
      { what: 'a live lease holder', intervalMs: 100 },
    )
  const firstTick = async () => (await db.query<{ t: Date | null }>('SELECT min(tick) AS t FROM cron_effects'))[0]?.t ?? null
  const t0 = (await waitFor(firstTick, { what: 'the first tick', intervalMs: 200 })).getTime()

  await sleep(12_000)
  const killed = await holder()
  killed.kill('SIGKILL')
  expect(await killed.exited).toBe('SIGKILL')

  await sleep(12_000)
  const paused = await holder()
  expect(paused).not.toBe(killed)
  paused.kill('SIGSTOP')
  await sleep(TTL_MS * 2)
  const third = await holder()
  expect(third).not.toBe(paused)
  paused.kill('SIGCONT')

  const last = t0 + 59_000
  await waitFor(
    async () => {
      const [r] = await db.query<{ t: Date | null }>('SELECT max(scheduled_time) AS t FROM _onepipe_cron_executions WHERE job_name = $1 AND status = $2', [job, 'completed'])
      return r?.t && r.t.getTime() >= last
    },
    { timeoutMs: 90_000, what: 'the 60th tick to complete', intervalMs: 500 },
  )
  for (const p of group.filter((g) => g !== killed)) p.kill('SIGTERM')
  expect(await Promise.all(group.filter((g) => g !== killed).map((p) => p.exited))).toEqual([0, 0])

  const effects = await db.query<{ tick: Date; n: number; pids: number[] }>(
    'SELECT tick, count(*)::int AS n, array_agg(pid) AS pids FROM cron_effects WHERE tick BETWEEN $1 AND $2 GROUP BY tick ORDER BY tick',
    [new Date(t0), new Date(last)],
  )
  const execs = await db.query<{ scheduled_time: Date; status: string; kind: string; instance_id: string }>(
    'SELECT scheduled_time, status, kind, instance_id FROM _onepipe_cron_executions WHERE job_name = $1 AND scheduled_time BETWEEN $2 AND $3 ORDER BY scheduled_time',
    [job, new Date(t0), new Date(last)],
  )
  const ticks = Array.from({ length: 60 }, (_, i) => t0 + i * 1000)
  const effectOf = new Map(effects.map((e) => [e.tick.getTime(), e]))
  const completed = execs.filter((e) => e.status === 'completed')
  const abandoned = execs.filter((e) => e.status === 'abandoned')
  console.log(
    `cron multi: 60 ticks, ${completed.length} completed, ${abandoned.length} abandoned (${abandoned.filter((e) => effectOf.has(e.scheduled_time.getTime())).length} of them with the effect made before the kill), ${effects.filter((e) => e.n > 1).length} duplicated, ${execs.filter((e) => e.kind === 'catch_up').length} caught up`,
  )
  // One execution row per tick, none missing: the failover gaps were caught up.
  expect(execs.map((e) => e.scheduled_time.getTime())).toEqual(ticks)
  // No tick's effect happened twice, whoever ran it.
  expect(effects.filter((e) => e.n > 1)).toEqual([])
  // Every tick is completed or abandoned; nothing is left running or failed.
  expect(execs.filter((e) => e.status !== 'completed' && e.status !== 'abandoned')).toEqual([])
  // A completed tick's effect happened exactly once.
  expect(completed.filter((e) => effectOf.get(e.scheduled_time.getTime())?.n !== 1).map((e) => e.scheduled_time)).toEqual([])
  // Abandoned: at most one tick (one SIGKILL), claimed by the killed process, with no effect
  // or the one it made before it died. The paused holder finished its tick when resumed.
  expect(abandoned.length).toBeLessThanOrEqual(1)
  for (const a of abandoned) {
    expect(pidOf(a.instance_id)).toBe(killed.pid)
    expect(effectOf.get(a.scheduled_time.getTime())?.pids ?? [killed.pid]).toEqual([killed.pid])
  }
  // Each failover left at least two ticks due at once for the next holder (the lease outlives a kill by ≥ 2 s).
  expect(execs.filter((e) => e.kind === 'catch_up').length).toBeGreaterThanOrEqual(2)
})
