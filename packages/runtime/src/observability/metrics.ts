import { engineMetricFamilies } from '@onepipe/core'
import { Registry, collectDefaultMetrics, type Metric } from 'prom-client'

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

interface Series {
  method: string
  route: string
  status: number
  count: number
  sum: number
  buckets: Float64Array
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/**
 * HTTP request counters and latency histograms, kept in plain arrays per
 * (method, route pattern, status) and rendered in Prometheus text format on
 * scrape. prom-client's labelled metrics hash their labels on every
 * observation, which cost more than a whole Hono handler; this costs one Map
 * lookup per request.
 */
export class HttpStats {
  #series = new Map<string, Series>()

  observe(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${status} ${route}`
    let s = this.#series.get(key)
    if (!s) {
      s = { method, route, status, count: 0, sum: 0, buckets: new Float64Array(BUCKETS.length) }
      this.#series.set(key, s)
    }
    s.count++
    s.sum += seconds
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= (BUCKETS[i] as number)) s.buckets[i] = (s.buckets[i] as number) + 1
  }

  render(): string {
    const out: string[] = [
      '# HELP onepipe_http_requests_total HTTP requests answered',
      '# TYPE onepipe_http_requests_total counter',
    ]
    const labels = (s: Series) => `method="${esc(s.method)}",route="${esc(s.route)}",status="${s.status}"`
    for (const s of this.#series.values()) out.push(`onepipe_http_requests_total{${labels(s)}} ${s.count}`)
    out.push('# HELP onepipe_http_request_duration_seconds HTTP request latency', '# TYPE onepipe_http_request_duration_seconds histogram')
    for (const s of this.#series.values()) {
      BUCKETS.forEach((b, i) => out.push(`onepipe_http_request_duration_seconds_bucket{${labels(s)},le="${b}"} ${s.buckets[i]}`))
      out.push(`onepipe_http_request_duration_seconds_bucket{${labels(s)},le="+Inf"} ${s.count}`)
      out.push(`onepipe_http_request_duration_seconds_sum{${labels(s)}} ${s.sum}`)
      out.push(`onepipe_http_request_duration_seconds_count{${labels(s)}} ${s.count}`)
    }
    return out.join('\n') + '\n'
  }
}

/** Prometheus metrics of one `serve()`: process defaults, the engine metrics, plus HTTP stats. */
export interface HttpMetrics {
  registry: Registry
  http: HttpStats
}

/**
 * Creates a registry with the process metrics and the engine metrics of
 * every primitive in the process (workflow runs and step durations, cron
 * lateness and runs, channel calls and replays, flow appends and
 * subscriber lag, projection lag, signal updates and CAS retries; see
 * `engineMetrics`), plus the HTTP request counter and latency histogram
 * (labels: method, route pattern, status). The engine metrics are the
 * process's own, so every registry made here shows the same values.
 *
 * @example
 * ```ts
 * const m = createMetrics()
 * const text = (await m.registry.metrics()) + m.http.render()
 * ```
 */
export function createMetrics(): HttpMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'onepipe_' })
  // Same shape as prom-client's own metrics (name, help, type, get()), without its label hashing per update.
  for (const m of engineMetricFamilies()) registry.registerMetric(m as unknown as Metric)
  return { registry, http: new HttpStats() }
}
