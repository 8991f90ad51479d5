import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileStreamStore } from '../src/stores/index.js'
import { runStoreSuite } from './store-suite.js'

runStoreSuite('file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'onepipe-file-store-'))
  return { store: await FileStreamStore.open({ dir }), cleanup: () => rm(dir, { recursive: true, force: true }) }
})
