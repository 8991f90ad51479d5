import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Flow, type Database } from '@onepipe/sdk'
import { postgresUrl, spawnNode, testDatabase, waitFor, type NodeProcess } from '@onepipe/testing'
import { GapProxy, terminateListeners } from '../../../core/test/gap-proxy.js'

// A reader process reaches PostgreSQL through a proxy. Its LISTEN backend is
// terminated and its reconnect held while this process appends, so the
// append's NOTIFY is never heard there. Its live readers check the store on
// their own only every 10 minutes (ONEPIPE_FLOW_POLL): the event reaches
// them within the test's deadline only through the re-check that follows
// the reconnect.
const fixture = fileURLToPath(new URL('./fixtures/gap-reader.mjs', import.meta.url))
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

it('subscribe() and stream({ live: true }) in another process get an event appended while their LISTEN backend was gone', async () => {
  const flow = Flow.create('gap').db(db).build()
  const reader = spawnNode(fixture, [], { DATABASE_URL: proxy.url, SCHEMA: schema, FLOW: 'gap', ONEPIPE_FLOW_POLL: '10m' })
  procs.push(reader)
  await reader.waitFor(/READY/)
  await flow.append({ n: 'before' })
  // Both readers got it through the NOTIFY, and now wait for the next one.
  await reader.waitFor(/SUB 1 /)
  await reader.waitFor(/STREAM 1 /)

  proxy.hold()
  try {
    expect(await terminateListeners(db, reader.pid)).toBeGreaterThan(0)
    await waitFor(() => proxy.pending > 0, { what: 'the reader to reconnect through the proxy' })
    expect((await flow.append({ n: 'during-gap' })).offset).toBe(2)
    expect(reader.output()).not.toMatch(/(SUB|STREAM) 2 /)
  } finally {
    proxy.release()
  }
  await reader.waitFor(/SUB 2 \{"n":"during-gap"\}/, 60_000)
  await reader.waitFor(/STREAM 2 \{"n":"during-gap"\}/, 60_000)

  // And the NOTIFYs of the new LISTEN connection are heard again.
  await flow.append({ n: 'after' })
  await reader.waitFor(/SUB 3 \{"n":"after"\}/)
  await reader.waitFor(/STREAM 3 \{"n":"after"\}/)
  reader.kill('SIGTERM')
  expect(await reader.exited).toBe(0)
  await flow.close()
})
