export * from './trace.js'
export * from './metrics.js'
