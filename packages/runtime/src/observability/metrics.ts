import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** Prometheus metrics of one `serve()`: process defaults plus HTTP counters. */
export interface HttpMetrics {
  registry: Registry
  requests: Counter<'method' | 'route' | 'status'>
  duration: Histogram<'method' | 'route' | 'status'>
}

/**
 * Creates a registry with the process metrics and the HTTP request counter
 * and latency histogram (labels: method, route pattern, status).
 *
 * @example
 * ```ts
 * const m = createMetrics()
 * const text = await m.registry.metrics()
 * ```
 */
export function createMetrics(): HttpMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'onepipe_' })
  const requests = new Counter({ name: 'onepipe_http_requests_total', help: 'HTTP requests answered', labelNames: ['method', 'route', 'status'] as const, registers: [registry] })
  const duration = new Histogram({
    name: 'onepipe_http_request_duration_seconds',
    help: 'HTTP request latency',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  return { registry, requests, duration }
}
