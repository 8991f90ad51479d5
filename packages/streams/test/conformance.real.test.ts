import { runConformance } from './conformance/run.js'
import { freshPostgresStore, freshRedisStore } from './durable-stores.js'

// The conformance suite over the stores that need real servers.
runConformance('redis', freshRedisStore)
runConformance('postgres', freshPostgresStore)
