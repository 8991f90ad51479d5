import { ValidationError, type Logger } from '@onepipe/core'
import type { Hono } from 'hono'
import { intParam, withErrors } from '../http/index.js'
import type { CronExecution } from './sql.js'
import type { CronInfo } from './types.js'

/** What the routes use of their Cron (named structurally, so this file needs no import of cron.ts). */
interface RoutedCron {
  readonly name: string
  info(): Promise<CronInfo>
  nextRuns(n: number): Promise<Date[]>
  history(options?: { limit?: number }): Promise<CronExecution[]>
  enqueue(): Promise<{ executionId: string }>
  pause(): Promise<void>
  resume(): Promise<void>
}

/** Jobs mounted per app, so the one list route sees every job of the app. */
const mounted = new WeakMap<object, RoutedCron[]>()

async function jobView(job: RoutedCron) {
  const [i, nextRuns] = await Promise.all([job.info(), job.nextRuns(5)])
  return {
    name: i.jobName,
    schedule: i.schedule,
    timezone: i.timezone ?? null,
    paused: i.pausedAt !== null,
    pausedAt: i.pausedAt,
    nextRuns,
    lease: i.lease,
  }
}

/**
 * The cron HTTP surface for operators (docs/dashboard.md):
 * `GET /__onepipe/cron` (`{ jobs }`: schedule, paused, the next 5 ticks, the
 * lease), `GET /__onepipe/cron/{name}/history?limit` (`{ executions }`,
 * newest first, limit 1–1000), `POST /__onepipe/cron/{name}/trigger` (202
 * `{ executionId }`: queued for the lease holder), `POST …/pause` and
 * `POST …/resume` (the job).
 */
export function mountCronRoutes(app: Hono, job: RoutedCron, logger: Logger): void {
  const base = `/__onepipe/cron/${job.name}`
  const wrap = withErrors(logger)
  app.get(`${base}/history`, wrap(async (c) => {
    const limit = intParam(c, 'limit') ?? 50
    if (limit < 1 || limit > 1000) throw new ValidationError('query', [{ path: 'limit', message: 'must be between 1 and 1000' }])
    return c.json({ executions: await job.history({ limit }) })
  }))
  app.post(`${base}/trigger`, wrap(async (c) => c.json(await job.enqueue(), 202)))
  app.post(`${base}/pause`, wrap(async (c) => {
    await job.pause()
    return c.json(await jobView(job))
  }))
  app.post(`${base}/resume`, wrap(async (c) => {
    await job.resume()
    return c.json(await jobView(job))
  }))
  app.get(base, wrap(async (c) => c.json(await jobView(job))))

  const list = mounted.get(app)
  if (list) {
    list.push(job)
    return
  }
  const jobs = [job]
  mounted.set(app, jobs)
  app.get('/__onepipe/cron', wrap(async (c) => c.json({ jobs: await Promise.all(jobs.map(jobView)) })))
}
