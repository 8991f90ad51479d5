// OnePipe's Unbroken server on the file store (fsync on every acknowledged append), for bench/streams.
import { FileStreamStore, UnbrokenServer } from '@onepipe/streams'
import { announce, scratchDir } from './child.mjs'

const dir = scratchDir('onepipe-streams')
const store = await FileStreamStore.open({ dir })
const server = new UnbrokenServer({ store, port: 0, sseLifetimeMs: 120_000, longPollTimeoutMs: 30_000 })
const { port } = await server.start()
announce(port, dir, () => server.stop())
