export { testDatabase, testCache, testBackend, postgresUrl, redisUrl, requireService, uniqueName } from './services.js'
export { spawnCommand, spawnNode, type NodeProcess } from './process.js'
export { waitFor, type WaitForOptions } from './wait.js'
export { collectText } from './sse.js'
