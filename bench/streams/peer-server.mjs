// The Durable Streams reference server (@durable-streams/server) with its file-backed store, for bench/streams.
import { DurableStreamTestServer } from '@durable-streams/server'
import { announce, scratchDir } from './child.mjs'

const dir = scratchDir('durable-streams')
const server = new DurableStreamTestServer({ port: 0, dataDir: dir, longPollTimeout: 30_000 })
const url = await server.start()
announce(Number(new URL(url).port), dir, () => server.stop())
