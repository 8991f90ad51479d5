import { afterAll, beforeAll, expect, it } from 'vitest'
import { z } from 'zod'
import { Flow, Projection, type Database } from '@onepipe/sdk'
import { MemoryStreamStore, StreamsClient, UnbrokenServer } from '@onepipe/streams'
import { testDatabase } from '@onepipe/testing'

const server = new UnbrokenServer({ store: new MemoryStreamStore(), longPollTimeoutMs: 300, sweepIntervalMs: 0 })
const client = new StreamsClient({ url: 'http://streams.test', fetch: ((u: string, i?: RequestInit) => server.app.request(u, i)) as typeof fetch })
let db: Database
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterAll(async () => {
  await cleanup()
  await server.stop()
})

it('folds a flow kept in the streams server, with its state in the database', async () => {
  const clicks = Flow.create('clicks').schema(z.object({ page: z.string() })).streams(client).build()
  const perPage = Projection.create('clicks-per-page')
    .from(clicks)
    .initial(0)
    .reduce((n) => n + 1)
    .keyBy((c) => c.page)
    .snapshot({ every: 3 })
    .db(db)
    .build()
  for (const page of ['/', '/a', '/', '/b', '/', '/a', '/']) await clicks.append({ page })
  await perPage.sync()
  expect(await perPage.entries()).toEqual([
    ['/', 4],
    ['/a', 2],
    ['/b', 1],
  ])
  expect(await perPage.status()).toMatchObject({ lastOffset: 7, eventCount: 7 })
  await clicks.close()
})
