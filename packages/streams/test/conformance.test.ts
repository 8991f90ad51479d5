import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileStreamStore, MemoryStreamStore } from '../src/index.js'
import { runConformance } from './conformance/run.js'

// One line per store; the Redis and PostgreSQL stores run from *.real.test.ts files.
runConformance('memory', () => Promise.resolve({ store: new MemoryStreamStore() }))
runConformance('file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'onepipe-file-conformance-'))
  return { store: await FileStreamStore.open({ dir }), cleanup: () => rm(dir, { recursive: true, force: true }) }
})
