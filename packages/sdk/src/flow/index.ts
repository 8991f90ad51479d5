export { Flow, FlowBuilder } from './flow.js'
export { sseResponse, type SseMessage } from './sse.js'
export type { AppendResult, FlowEvent, FlowStore, ReadOptions, RetentionOptions, StreamOptions, SubscribeOptions, Unsubscribe } from './types.js'
