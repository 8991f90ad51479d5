export * from './stores/index.js'
export * from './server/index.js'
