import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileStreamStore } from '../src/stores/index.js'
import { runStoreSuite } from './store-suite.js'

async function fileStore(cacheBytes?: number) {
  const dir = await mkdtemp(join(tmpdir(), 'onepipe-file-store-'))
  return { store: await FileStreamStore.open({ dir, ...(cacheBytes !== undefined ? { cacheBytes } : {}) }), cleanup: () => rm(dir, { recursive: true, force: true }) }
}

runStoreSuite('file', () => fileStore())
// No record cache: every read goes through the offset index to the file.
runStoreSuite('file (reads from disk)', () => fileStore(0))
