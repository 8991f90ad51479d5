// @onepipe/worker: the worker side of OnePipe's pipelines (docs/protocol/workers.md).
// A worker pulls jobs over HTTP from the control plane, runs them and acknowledges them.
export { Worker, type StopOptions, type WorkerState } from './worker/worker.js'
export { WorkerBuilder, DEFAULT_WORKERS_URL, DEFAULT_STOP_TIMEOUT_MS } from './worker/builder.js'
export type { Job, JobContext, JobHandler, JobLogger } from './worker/job.js'
export type { WorkerLogger } from './worker/logger.js'
export { ACK_BATCH_MAX, ACK_LINGER_MS } from './worker/acks.js'
export { WorkerHttpError, WorkerAuthError, JobAbortedError } from './errors/index.js'
// Re-exported so that a worker needs only this package: throw TerminalError to fail a stage for good.
export { TerminalError, OnePipeError, ConfigError, TransportError, ValidationError } from '@onepipe/core'
