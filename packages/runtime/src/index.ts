export { serve, type App, type ServeOptions, type ServeShutdownReport } from './serve/index.js'
export { createLogger } from './observability/logger.js'
export { createMetrics, HttpStats, type HttpMetrics } from './observability/metrics.js'
export { startTracing, type Tracing, type TracingIdentity } from './observability/tracing.js'
