// The analysis worker: a process of its own (on any host) that pulls
// `blueprint.analyze` jobs from the control plane with the workers' API key,
// reads each blueprint from the app, asks the AI provider for its fixtures,
// reports them to the app and acknowledges the stage with them.
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Worker } from '@onepipe/worker'
import { providerFromEnv } from './ai/provider.js'
import { analyzeJob, type AppClient } from './analyst.js'
import { ANALYZE_HANDLER, DEFAULT_DATA_DIR, WORKER_KEY_FILE } from './contracts.js'

/** The workers' API key: `ONEPIPE_API_KEY`, else the development key the app wrote beside its embedded database. */
function apiKeyFromEnv(): string {
  if (process.env.ONEPIPE_API_KEY) return process.env.ONEPIPE_API_KEY
  const file = join(resolve(process.env.ONEPIPE_DATA_DIR ?? DEFAULT_DATA_DIR), WORKER_KEY_FILE)
  if (existsSync(file)) return readFileSync(file, 'utf8').trim()
  process.stderr.write(`\n  The worker needs an API key of the workers' application: set ONEPIPE_API_KEY, or start the app on the embedded default first (it writes ${file}).\n\n`)
  process.exit(1)
}

const app: AppClient = { url: (process.env.PIPELINEOS_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, ''), apiKey: apiKeyFromEnv() }
const provider = providerFromEnv(process.env)
const concurrency = Number(process.env.WORKER_CONCURRENCY ?? '2') // Worker.concurrency() refuses anything but 1-1000
const worker = Worker.create(process.env.WORKER_NAME ?? 'pipelineos-analyst')
  .url(process.env.ONEPIPE_WORKERS_URL)
  .apiKey(app.apiKey)
  .handle(ANALYZE_HANDLER, (job, ctx) => analyzeJob(job, ctx, app, provider))
  .concurrency(concurrency)
  .version('1.0.0')
  .handleSignals()
  .build()
worker.on('error', (e) => {
  process.stderr.write(`\n  The worker stopped: ${e.code}: ${e.message}\n\n`)
  process.exitCode = 1
})
await worker.start()
process.stdout.write(`  PipelineOS worker ${worker.workerId ?? ''} pulls ${ANALYZE_HANDLER} (provider ${provider.name}, app ${app.url})\n`)
