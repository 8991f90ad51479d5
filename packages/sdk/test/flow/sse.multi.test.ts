import { request, type IncomingMessage } from 'node:http'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Flow, type Database } from '@onepipe/sdk'
import { spawnNode, testDatabase, type NodeProcess } from '@onepipe/testing'

const fixture = fileURLToPath(new URL('./fixtures/sse-server.mjs', import.meta.url))
let db: Database
let schema: string
let url: string | undefined
let cleanup: () => Promise<void>
let server: NodeProcess | undefined
let res: IncomingMessage | undefined

beforeAll(async () => {
  ;({ db, schema, url, cleanup } = await testDatabase())
})
afterAll(async () => {
  res?.destroy()
  server?.kill('SIGKILL')
  await server?.exited
  await cleanup()
})

interface Stats {
  heapUsed: number
  external: number
  arrayBuffers: number
}
const PAD = 'x'.repeat(4000) // ~4 KB per event
const TOTAL = 8000
const BATCH = 50

// What the server buffers for a client that does not read is a property of
// the server, not of the machine's speed: the test appends a fixed amount
// while the client lags, whatever time that takes. The append rate a flow
// sustains is measured by bench/flow.
it('a slow SSE client of a flow receiving 8,000 events (~32 MB) while it lags loses none, and the server memory stays bounded', { timeout: 180_000 }, async () => {
  server = spawnNode(fixture, [], { DATABASE_URL: url ?? '', SCHEMA: schema, FLOW: 'firehose' })
  const port = Number((await server.waitFor(/PORT=\d+/)).slice(5))
  const stats = async (): Promise<Stats> => (await fetch(`http://127.0.0.1:${port}/stats`)).json() as Promise<Stats>
  const flow = Flow.create('firehose').db(db).build()
  await flow.append({ i: 0, pad: PAD })
  const before = await stats()

  res = await new Promise<IncomingMessage>((resolve, reject) => request(`http://127.0.0.1:${port}/__onepipe/flows/firehose/stream?offset=0`, resolve).on('error', reject).end())
  expect(res.headers['content-type']).toMatch(/text\/event-stream/)
  const stream = res
  stream.pause()
  let pending = ''
  const offsets: number[] = []
  // Takes one complete event from what the client has buffered, pulling a chunk only when needed.
  const takeOne = (): boolean => {
    for (;;) {
      const m = /(?:^|\n)id: (\d+)\ndata: [^\n]*\n\n/.exec(pending)
      if (m) {
        offsets.push(Number(m[1]))
        pending = pending.slice(m.index + m[0].length)
        return true
      }
      const chunk = stream.read() as Buffer | null
      if (chunk === null) return false
      pending += chunk.toString()
    }
  }

  // The producer appends in concurrent batches; the slow consumer reads one event per 1,000 appended.
  const peaks: Stats[] = []
  let i = 1
  while (i <= TOTAL) {
    await Promise.all(Array.from({ length: BATCH }, () => flow.append({ i: i++, pad: PAD })))
    if ((i - 1) % 1000 === 0) {
      takeOne()
      if (i - 1 >= 4000) peaks.push(await stats())
    }
  }
  const appended = i // the TOTAL events plus the first one
  peaks.push(await stats())

  // ~4 KB × 8,000 events ≈ 32 MB went into the flow while the client lagged; the server held at most a page of it.
  const growth = Math.max(...peaks.map((p) => p.heapUsed + p.external - before.heapUsed - before.external))
  console.log(`slow SSE client: ${appended} events appended (${Math.round((appended * 4) / 1024)} MB), client read ${offsets.length}; server heap+external growth ${(growth / 1048576).toFixed(1)} MB`)
  expect(growth).toBeLessThan(8 * 1024 * 1024)

  // Now the client catches up at full speed: every event arrives, in order, none lost.
  const drainEnd = Date.now() + 90_000
  while (offsets.length < appended && Date.now() < drainEnd) {
    if (!takeOne()) await new Promise((r) => stream.once('readable', r))
  }
  expect(offsets.length).toBe(appended)
  expect(offsets).toEqual(Array.from({ length: appended }, (_, k) => k + 1))
  await flow.close()
})
