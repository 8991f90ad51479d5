/**
 * @onepipe/streams: the Unbroken streams server (Durable Streams protocol
 * with OnePipe's namespaces), its stores and its client.
 */
export * from './stores/index.js'
export * from './server/index.js'
export { StreamsClient, StreamHandle, IdempotentProducer } from './client/index.js'
export type { StreamsClientOptions, CreateOptions, AppendOptions, StreamBatch, ReadOptions as ClientReadOptions, SubscribeOptions, ProducerOptions } from './client/index.js'
