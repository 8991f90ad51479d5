import { runStoreSuite } from './store-suite.js'
import { freshPostgresStore } from './durable-stores.js'

// PostgreSQL on the real run, PGlite on the embedded one: same SQL, same migrations.
runStoreSuite('postgres', freshPostgresStore, { shared: true })
