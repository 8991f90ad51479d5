import { MemoryStreamStore } from '../src/stores/index.js'
import { runStoreSuite } from './store-suite.js'

runStoreSuite('memory', () => Promise.resolve({ store: new MemoryStreamStore() }))
