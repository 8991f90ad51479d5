export { Flow, FlowBuilder } from './flow.js'
export type { FlowAppendResult, FlowEvent, FlowStore, FlowReadOptions, FlowRetentionOptions, FlowStreamOptions, FlowSubscribeOptions, Unsubscribe } from './types.js'
