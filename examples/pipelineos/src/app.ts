import { ConfigError, Lifecycle, RateLimit, type Database } from '@onepipe/sdk'
import { createBidsApi, createBidWorkflow } from './bids.js'
import { createAnalysisPipeline, createBlueprintEvents, createBlueprintsApi } from './blueprints.js'
import { createMailer, type Mailer } from './mail.js'
import { DEFAULT_PRICE_BOOK, type PriceBook } from './pricing.js'
import { createRequeueCron } from './requeue.js'
import { createAuth, WorkersApplication } from './setup.js'

/** What the app can be given instead of what the environment says. */
export interface PipelineOSOptions {
  mailer?: Mailer
  book?: PriceBook
  /** Requests per second one client address may send to `/api` (default `PIPELINEOS_RATE_LIMIT`, else 10). */
  requestsPerSecond?: number
}

function rateFromEnv(): number {
  const raw = process.env.PIPELINEOS_RATE_LIMIT
  if (raw === undefined || raw === '') return 10
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1) throw new ConfigError('PIPELINEOS_RATE_LIMIT_INVALID', `PIPELINEOS_RATE_LIMIT must be a whole number of requests per second from 1, not "${raw}"`)
  return n
}

/**
 * Every primitive of PipelineOS wired together: `serve` holds the `serve()`
 * options (the entry point and the tests serve the same app); `auth` and
 * `workers` are what the entry point needs after start-up (the workers'
 * application and its development key).
 *
 * @example
 * ```ts
 * const { serve: options } = createPipelineOS(db)
 * await serve(options)
 * ```
 */
export function createPipelineOS(db: Database, o: PipelineOSOptions = {}) {
  const auth = createAuth(db)
  const workers = new WorkersApplication(auth)
  const events = createBlueprintEvents(db)
  const analysis = createAnalysisPipeline(db)
  const bid = createBidWorkflow(db, { mailer: o.mailer ?? createMailer(process.env), book: o.book ?? DEFAULT_PRICE_BOOK })
  // The seed's budget: 10 requests a second per address, in the app's cache (Redis when REDIS_URL is set, shared by every instance).
  const perSecond = o.requestsPerSecond ?? rateFromEnv()
  const rateLimit = RateLimit.create('api-per-address')
    .points(perSecond * 10)
    .per('10s')
    .by('ip')
    .build()
  const lifecycle = Lifecycle.create()
    .onShutdown('db', () => db.close(), 90)
    .timeout('20s')
    .build()
  return {
    auth,
    workers,
    serve: {
      db,
      auth,
      rest: [createBlueprintsApi(db, { auth, events, analysis, workers, rateLimit }), createBidsApi(db, { auth, workflow: bid, rateLimit })],
      flows: [events],
      workflows: [bid],
      cron: [createRequeueCron(db, { analysis, workers, events, ...(process.env.PIPELINEOS_TZ ? { timezone: process.env.PIPELINEOS_TZ } : {}) })],
      pipelines: [analysis],
      lifecycle,
      openapi: { title: 'PipelineOS', version: '1.0.0' },
    },
  }
}
