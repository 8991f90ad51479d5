// Engine metrics: one set per process, updated by the primitives and read by
// whatever exposes them (serve() adds them to its prom-client registry at
// /metrics). A child per label set is looked up once and kept by the caller,
// so an update on a hot path is one addition: no label hashing per call
// (prom-client hashes the labels on every inc, even through labels()).

/**
 * One sample as a Prometheus registry renders it (prom-client's shape).
 *
 * @example
 * ```ts
 * const s: MetricSample = { metricName: 'app_seconds_bucket', labels: { le: '0.5' }, value: 3 }
 * ```
 */
export interface MetricSample {
  labels: Record<string, string>
  value: number
  metricName?: string
}

/**
 * What a metric family answers on scrape (prom-client's `get()` shape, so its registry can render it).
 *
 * @example
 * ```ts
 * const { values } = await engineMetrics.channelCalls.get()
 * ```
 */
export interface MetricSnapshot {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram'
  values: MetricSample[]
  aggregator: 'sum'
}

/**
 * A family of samples with one name, read on scrape. Any object with this
 * shape can be registered in a prom-client `Registry` (`registerMetric`).
 *
 * @example
 * ```ts
 * for (const m of engineMetricFamilies()) registry.registerMetric(m as never)
 * ```
 */
export interface MetricFamily {
  readonly name: string
  readonly help: string
  readonly type: MetricSnapshot['type']
  get(): Promise<MetricSnapshot>
  /** Forgets every recorded value (prom-client's `resetMetrics()` calls it). */
  reset(): void
}

/** Label sets a family keeps before new ones are folded into one `(other)` series: a guard against unbounded names. */
const MAX_SERIES = 2000
const OTHER = '(other)'

abstract class Family<C> implements MetricFamily {
  abstract readonly type: MetricSnapshot['type']
  #children = new Map<string, { values: readonly string[]; child: C }>()

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  protected abstract make(): C

  /** The child for these label values (in `labelNames` order), made on first use. Keep it where updates are hot. */
  with(...values: string[]): C {
    let key = values.join('\u0001')
    let e = this.#children.get(key)
    if (!e) {
      let labels = this.labelNames.map((_, i) => values[i] ?? '')
      if (this.#children.size >= MAX_SERIES) {
        labels = this.labelNames.map(() => OTHER)
        key = labels.join('\u0001')
        e = this.#children.get(key)
        if (e) return e.child
      }
      e = { values: labels, child: this.make() }
      this.#children.set(key, e)
    }
    return e.child
  }

  protected labelsOf(values: readonly string[]): Record<string, string> {
    const o: Record<string, string> = {}
    this.labelNames.forEach((n, i) => (o[n] = values[i] ?? ''))
    return o
  }

  protected entries(): { values: readonly string[]; child: C }[] {
    return [...this.#children.values()]
  }

  reset(): void {
    this.#children.clear()
  }

  abstract get(): Promise<MetricSnapshot>
}

/**
 * A counter child: `inc()` adds to it.
 *
 * @example
 * ```ts
 * const replays: CounterChild = engineMetrics.channelReplays.with('pay')
 * replays.inc()
 * ```
 */
export class CounterChild {
  value = 0
  inc(n = 1): void {
    this.value += n
  }
}

/**
 * A counter family (name ending in `_total`).
 *
 * @example
 * ```ts
 * const calls = new CounterFamily('app_calls_total', 'Calls', ['outcome'])
 * const ok = calls.with('ok')
 * ok.inc()
 * ```
 */
export class CounterFamily extends Family<CounterChild> {
  readonly type = 'counter'
  protected make(): CounterChild {
    return new CounterChild()
  }

  async get(): Promise<MetricSnapshot> {
    return { name: this.name, help: this.help, type: 'counter', aggregator: 'sum', values: this.entries().map((e) => ({ labels: this.labelsOf(e.values), value: e.child.value })) }
  }
}

/**
 * A histogram child: `observe(v)` counts `v` in its bucket.
 *
 * @example
 * ```ts
 * const step: HistogramChild = engineMetrics.workflowStepDuration.with('process-order', 'charge')
 * step.observe(0.12)
 * ```
 */
export class HistogramChild {
  readonly counts: Float64Array
  sum = 0
  count = 0
  constructor(readonly buckets: readonly number[]) {
    this.counts = new Float64Array(buckets.length)
  }

  observe(v: number): void {
    if (!Number.isFinite(v)) return
    this.sum += v
    this.count++
    // Counted in the first bucket only; rendered cumulatively on scrape.
    for (let i = 0; i < this.buckets.length; i++) {
      if (v <= (this.buckets[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1
        return
      }
    }
  }
}

/**
 * A histogram family with fixed upper bounds (in the metric's unit).
 *
 * @example
 * ```ts
 * const d = new HistogramFamily('app_step_seconds', 'Step time', ['step'], [0.1, 1, 10])
 * d.with('charge').observe(0.42)
 * ```
 */
export class HistogramFamily extends Family<HistogramChild> {
  readonly type = 'histogram'
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[],
  ) {
    super(name, help, labelNames)
  }

  protected make(): HistogramChild {
    return new HistogramChild(this.buckets)
  }

  async get(): Promise<MetricSnapshot> {
    const values: MetricSample[] = []
    for (const e of this.entries()) {
      const labels = this.labelsOf(e.values)
      let acc = 0
      this.buckets.forEach((b, i) => {
        acc += e.child.counts[i] as number
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: String(b) }, value: acc })
      })
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: e.child.count })
      values.push({ metricName: `${this.name}_sum`, labels, value: e.child.sum })
      values.push({ metricName: `${this.name}_count`, labels, value: e.child.count })
    }
    return { name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values }
  }
}

/**
 * Reads one gauge value on scrape; undefined (or a throw, or no answer in time) leaves it out.
 *
 * @example
 * ```ts
 * const read: GaugeSource = async () => (await flow.head()) - handled
 * ```
 */
export type GaugeSource = () => number | undefined | Promise<number | undefined>

/** How long a scrape waits for one gauge source (a store that does not answer must not hang /metrics). */
const SOURCE_TIMEOUT_MS = 2000

/**
 * A gauge whose values are read on scrape from sources the primitives
 * register (a lag needs the store's head, which is only worth reading when
 * someone asks). Sources with the same labels report their maximum.
 *
 * @example
 * ```ts
 * const lag = new GaugeFamily('app_lag', 'Lag', ['queue'])
 * const remove = lag.source(['jobs'], async () => (await head()) - done)
 * remove()
 * ```
 */
export class GaugeFamily implements MetricFamily {
  readonly type = 'gauge'
  #sources = new Set<{ labels: Record<string, string>; key: string; read: GaugeSource }>()

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  /** Adds a source for these label values; answers the function that removes it. */
  source(values: string[], read: GaugeSource): () => void {
    const labels: Record<string, string> = {}
    this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''))
    const s = { labels, key: values.join('\u0001'), read }
    this.#sources.add(s)
    return () => void this.#sources.delete(s)
  }

  async get(): Promise<MetricSnapshot> {
    const read = async (s: { read: GaugeSource }): Promise<number | undefined> => {
      let t: NodeJS.Timeout | undefined
      try {
        return await Promise.race([Promise.resolve().then(s.read), new Promise<undefined>((r) => (t = setTimeout(() => r(undefined), SOURCE_TIMEOUT_MS)))])
      } catch {
        return undefined
      } finally {
        clearTimeout(t)
      }
    }
    const sources = [...this.#sources]
    const got = await Promise.all(sources.map(read))
    const byKey = new Map<string, MetricSample>()
    sources.forEach((s, i) => {
      const v = got[i]
      if (v === undefined || !Number.isFinite(v)) return
      const had = byKey.get(s.key)
      if (!had) byKey.set(s.key, { labels: s.labels, value: v })
      else had.value = Math.max(had.value, v)
    })
    return { name: this.name, help: this.help, type: 'gauge', aggregator: 'sum', values: [...byKey.values()] }
  }

  reset(): void {
    // Sources belong to running subscriptions; they leave when those stop.
  }
}

const STEP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
const LATENESS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

/**
 * The engine metrics of this process, updated by the primitives wherever
 * they run (under `serve()` or not) and exposed by `serve()` at `/metrics`.
 *
 * @example
 * ```ts
 * const failed = engineMetrics.workflowRuns.with('process-order', 'failed')
 * failed.inc()
 * ```
 */
export const engineMetrics = {
  workflowRuns: new CounterFamily('onepipe_workflow_runs_total', 'Workflow runs by status: started (created by a start), completed, failed, cancelled', ['workflow', 'status']),
  workflowStepDuration: new HistogramFamily('onepipe_workflow_step_duration_seconds', 'Time a workflow step took to run, retries included (replayed steps are not counted)', ['workflow', 'step'], STEP_BUCKETS),
  cronFireLateness: new HistogramFamily('onepipe_cron_fire_lateness_seconds', 'How long after its scheduled tick a cron run started (database clock)', ['job'], LATENESS_BUCKETS),
  cronRuns: new CounterFamily('onepipe_cron_runs_total', 'Cron runs by outcome (completed, failed)', ['job', 'outcome']),
  channelCalls: new CounterFamily('onepipe_channel_calls_total', 'Channel calls by outcome (completed, failed), replays included', ['channel', 'outcome']),
  channelReplays: new CounterFamily('onepipe_channel_replays_total', 'Channel calls answered with the stored outcome of their idempotency key, without running the handler', ['channel']),
  flowAppends: new CounterFamily('onepipe_flow_appends_total', 'Events appended to a flow by this process', ['flow']),
  flowSubscriberLag: new GaugeFamily('onepipe_flow_subscriber_lag', "Events between a flow's head and the last one its subscribers in this process handled (the largest per flow)", ['flow']),
  projectionLag: new GaugeFamily('onepipe_projection_lag', 'Events of its flow a projection has not folded yet', ['projection']),
  signalUpdates: new CounterFamily('onepipe_signal_updates_total', 'Signal values written by this process (each update, patch, set and reset)', ['signal']),
  signalCasRetries: new CounterFamily('onepipe_signal_cas_retries_total', 'Compare-and-swap writes of a signal lost to another writer and retried', ['signal']),
}

/**
 * Every engine metric family, to register in a Prometheus registry.
 *
 * @example
 * ```ts
 * const registry = new Registry()
 * for (const m of engineMetricFamilies()) registry.registerMetric(m as never)
 * ```
 */
export function engineMetricFamilies(): MetricFamily[] {
  return Object.values(engineMetrics)
}
