// Things: typed entities by noun with filters pushed down to SQL, every
// change announced in the store's event flow in its own transaction
// (docs/things.md).
export { Things, ThingsBuilder, THINGS_LIMITS } from './things.js'
export { ThingCollection } from './collection.js'
export type { Thing, ThingMeta, ThingEvent, ThingVerb, Where, FieldCondition, FilterValue, OrderBy, ListOptions, NounOptions } from './types.js'
