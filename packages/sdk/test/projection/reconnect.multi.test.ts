import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Flow, Projection, type Database } from '@onepipe/sdk'
import { postgresUrl, spawnNode, testDatabase, waitFor, type NodeProcess } from '@onepipe/testing'
import { GapProxy, terminateListeners } from '../../../core/test/gap-proxy.js'

// A process running a projection (or subscribed to one) reaches PostgreSQL
// through a proxy. Its LISTEN backend is terminated and its reconnect held
// while this process appends (and, for the subscriber, folds the append), so
// the NOTIFY is never heard there. The flow's own check runs only every 10
// minutes (ONEPIPE_FLOW_POLL) and projection subscribers never poll: the
// change reaches that process within the test's deadline only through the
// re-check that follows the reconnect.
const fixture = fileURLToPath(new URL('./fixtures/gap-projector.mjs', import.meta.url))
let db: Database
let schema: string
let cleanup: () => Promise<void>
let proxy: GapProxy
const procs: NodeProcess[] = []

beforeAll(async () => {
  ;({ db, schema, cleanup } = await testDatabase())
  proxy = await GapProxy.start(postgresUrl())
})
afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.exited))
  await proxy.close()
  await cleanup()
})

function start(mode: 'runner' | 'subscriber'): NodeProcess {
  const p = spawnNode(fixture, [], { DATABASE_URL: proxy.url, SCHEMA: schema, MODE: mode, ONEPIPE_FLOW_POLL: '10m' })
  procs.push(p)
  return p
}

/** Terminates `p`'s LISTEN backend, holds its reconnect while `during` runs, then lets it through. */
async function inGap(p: NodeProcess, during: () => Promise<void>): Promise<void> {
  proxy.hold()
  try {
    expect(await terminateListeners(db, p.pid)).toBeGreaterThan(0)
    await waitFor(() => proxy.pending > 0, { what: 'the process to reconnect through the proxy' })
    await during()
  } finally {
    proxy.release()
  }
}

const flow = () => Flow.create('gap').db(db).build()
const count = (f: Flow) =>
  Projection.create('count')
    .from(f)
    .initial<{ n: number; last: unknown }>({ n: 0, last: null })
    .reduce((s, e) => ({ n: s.n + 1, last: e }))
    .db(db)
    .build()

it('a projection runner in another process folds an event appended while its LISTEN backend was gone', async () => {
  const f = flow()
  const view = count(f)
  const runner = start('runner')
  await runner.waitFor(/READY/)
  await f.append('before')
  await waitFor(async () => (await view.status()).lastOffset === 1, { what: 'the runner to fold the first event' })
  // It read again after folding and found nothing: it now waits for the next append.
  await runner.waitFor(/READ 1\nREAD 0\n/)

  await inGap(runner, async () => {
    expect((await f.append('during-gap')).offset).toBe(2)
    expect((await view.status()).lastOffset).toBe(1)
  })
  await waitFor(async () => (await view.status()).lastOffset === 2, { what: 'the runner to fold the event appended in the gap', timeoutMs: 60_000 })
  expect(await view.get()).toEqual({ n: 2, last: 'during-gap' })
  runner.kill('SIGTERM')
  expect(await runner.exited).toBe(0)
  await f.close()
})

it('a projection subscriber in another process hears of a batch committed while its LISTEN backend was gone', async () => {
  const f = flow()
  const view = count(f)
  const sub = start('subscriber')
  await sub.waitFor(/READY/)
  const n = (await view.status()).eventCount

  await inGap(sub, async () => {
    await f.append('folded-in-gap')
    await view.sync()
    expect(sub.output()).not.toMatch(/STATE/)
  })
  await sub.waitFor(new RegExp(`STATE \\{"n":${n + 1},"last":"folded-in-gap"\\}`), 60_000)
  sub.kill('SIGTERM')
  expect(await sub.exited).toBe(0)
  await f.close()
})
