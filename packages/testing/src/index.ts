export { testDatabase, testCache, testBackend, postgresUrl, redisUrl, requireService, uniqueName } from './services.js'
export { spawnNode, type NodeProcess } from './process.js'
export { waitFor, type WaitForOptions } from './wait.js'
