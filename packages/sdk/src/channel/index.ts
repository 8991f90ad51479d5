// Channel: RPC with validated input, timeout, retries and idempotency by key.
export { Channel, ChannelBuilder, IdempotencyConflictError, type CallOptions, type ChannelContext, type TransactionalContext } from './channel.js'
export type { ChannelCall } from './store.js'
export type { RetryPolicy as ChannelRetryPolicy } from './retry.js'
