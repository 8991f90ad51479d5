import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'

/** What a heartbeat reports about the process besides `inFlight`. */
export interface ProcessStats {
  /** CPU time spent since the last sample over wall time (1 = one core busy). */
  cpu: number
  /** Resident set size, in bytes. */
  memoryBytes: number
  /** 99th percentile of event-loop delay since the last sample, in ms: how late a renewal or ack could be. */
  lagMs: number
}

/** Samples CPU, memory and event-loop delay between heartbeats. */
export class StatsSampler {
  #histogram: IntervalHistogram | undefined
  #cpu = process.cpuUsage()
  #at = performance.now()

  start(): void {
    this.#histogram = monitorEventLoopDelay({ resolution: 20 })
    this.#histogram.enable()
    this.#cpu = process.cpuUsage()
    this.#at = performance.now()
  }

  /** The figures since the previous call (or start), then starts a new interval. */
  sample(): ProcessStats {
    const now = performance.now()
    const used = process.cpuUsage(this.#cpu)
    const wallUs = Math.max(1, (now - this.#at) * 1000)
    this.#cpu = process.cpuUsage()
    this.#at = now
    const h = this.#histogram
    // An empty histogram (no sample yet) reports a huge percentile: report 0 then.
    const lagNs = h && h.count > 0 ? h.percentile(99) : 0
    h?.reset()
    return {
      cpu: Math.round(((used.user + used.system) / wallUs) * 1000) / 1000,
      memoryBytes: process.memoryUsage.rss(),
      lagMs: Math.round(lagNs / 1e4) / 100,
    }
  }

  stop(): void {
    this.#histogram?.disable()
    this.#histogram = undefined
  }
}
