import { MemoryStreamStore } from '../src/index.js'
import { runConformance } from './conformance/run.js'

// One line per store; the Redis and PostgreSQL stores run from *.real.test.ts files.
runConformance('memory', () => Promise.resolve({ store: new MemoryStreamStore() }))
