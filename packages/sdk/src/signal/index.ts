export { Signal, SignalBuilder } from './signal.js'
export type { Versioned } from './stores.js'
