export { Signal, SignalBuilder } from './signal.js'
export type { VersionedValue } from './stores.js'
