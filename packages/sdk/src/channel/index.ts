// Channel: RPC with validated input, timeout, retries and idempotency by key.
export { Channel, ChannelBuilder } from './channel.js'
export { IdempotencyConflictError } from './errors.js'
export type { CallOptions, ChannelContext, TransactionalContext } from './types.js'
export type { ChannelCall, IdempotencyEntry } from './store.js'
export type { RetryPolicy as ChannelRetryPolicy } from './retry.js'
