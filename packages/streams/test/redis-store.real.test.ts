import { runStoreSuite } from './store-suite.js'
import { freshRedisStore } from './durable-stores.js'

runStoreSuite('redis', freshRedisStore, { shared: true })
