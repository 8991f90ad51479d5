import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { ConfigError, Flow, Projection, type Database } from '@onepipe/sdk'
import { testDatabase, waitFor } from '@onepipe/testing'

// ONEPIPE_FLOW_POLL sets how often live readers check the store without a
// notice (a safety net; the tests of lost notification connections set it
// to 10 minutes). A value that is not a duration fails where a live reader
// or a projection runner starts, not later inside it.
let db: Database
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterEach(() => {
  delete process.env.ONEPIPE_FLOW_POLL
})
afterAll(() => cleanup())

it('a live stream and a projection start refuse an ONEPIPE_FLOW_POLL that is not a duration', async () => {
  const flow = Flow.create('poll-bad').db(db).build()
  const view = Projection.create('poll-bad').from(flow).initial(0).reduce((n) => n + 1).db(db).build()
  process.env.ONEPIPE_FLOW_POLL = 'soonish'
  const live = flow.stream({ live: true })[Symbol.asyncIterator]()
  await expect(live.next()).rejects.toThrow(ConfigError)
  await expect(view.start()).rejects.toMatchObject({ code: 'INVALID_DURATION' })
  // Reading without live is untouched by it.
  await flow.append('x')
  const read: unknown[] = []
  for await (const e of flow.stream()) read.push(e.data)
  expect(read).toEqual(['x'])
  await flow.close()
})

it('with ONEPIPE_FLOW_POLL at 10 minutes, a live stream gets the appends of its process, and ends when aborted while its consumer handles an event', async () => {
  process.env.ONEPIPE_FLOW_POLL = '10m'
  const flow = Flow.create('poll-long').db(db).build()
  const ac = new AbortController()
  const got: unknown[] = []
  let ended = false
  const reading = (async () => {
    for await (const e of flow.stream({ live: true, signal: ac.signal })) {
      got.push(e.data)
      if (got.length === 2) ac.abort()
    }
    ended = true
  })()
  await flow.append('a')
  await flow.append('b')
  // Neither the appends nor the end may wait for the 10-minute check.
  await waitFor(() => ended, { what: 'the aborted stream to end', timeoutMs: 60_000 })
  await reading
  expect(got).toEqual(['a', 'b'])
  await flow.close()
})
