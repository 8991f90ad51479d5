// What the analysis worker does with one job, apart from the process that
// runs it (src/worker.ts): report, read, analyse, report, acknowledge.
import { OnePipeError, TerminalError, type Job, type JobContext } from '@onepipe/worker'
import type { AiProvider } from './ai/provider.js'
import { ANALYSIS_ATTEMPTS, AnalysisInput, type AnalysisReport, type Fixture } from './contracts.js'

/** Where the worker reaches the app, and with which key. */
export interface AppClient {
  url: string
  apiKey: string
}

/** Calls the app with the workers' key; a refusal the worker cannot mend is terminal, anything else may pass next time. */
async function callApp(app: AppClient, path: string, init: RequestInit & { signal: AbortSignal }): Promise<Response> {
  const res = await fetch(`${app.url}${path}`, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), 'x-api-key': app.apiKey } })
  if (res.ok) return res
  const text = await res.text()
  const message = `${init.method ?? 'GET'} ${path} answered ${res.status}: ${text.slice(0, 500)}`
  // 404 (the blueprint is gone), 409 (another run analyses it now), 400/403: another attempt would get the same.
  if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) throw new TerminalError('APP_REFUSED', message)
  throw new Error(message)
}

async function report(app: AppClient, blueprintId: string, r: AnalysisReport, signal: AbortSignal): Promise<void> {
  await callApp(app, `/api/blueprints/${blueprintId}/analysis`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(r), signal })
}

/** Whether the worker client acknowledges `e` as retryable: what decides if the stage has another attempt. */
function retryable(e: unknown): boolean {
  if (e instanceof OnePipeError) return e.retryable
  return (e as { retryable?: unknown } | null)?.retryable !== false
}

/**
 * Runs one analysis job: reports `analyzing`, reads the file, asks the
 * provider, reports the fixtures (or, when this attempt is the last or the
 * failure is for good, the failure) and returns the fixtures as the stage's
 * output.
 *
 * @example
 * ```ts
 * Worker.create('analyst').handle(ANALYZE_HANDLER, (job, ctx) => analyzeJob(job, ctx, app, provider))
 * ```
 */
export async function analyzeJob(job: Job<unknown>, ctx: JobContext, app: AppClient, provider: AiProvider): Promise<{ fixtures: Fixture[]; provider: string }> {
  const parsed = AnalysisInput.safeParse(job.input)
  if (!parsed.success) throw new TerminalError('BAD_JOB_INPUT', `The job's input is not an analysis input: ${parsed.error.message}`)
  const input = parsed.data
  const base = { pipelineId: job.pipelineId }
  try {
    await report(app, input.blueprintId, { ...base, status: 'analyzing', attempt: job.attempt }, ctx.signal)
    const res = await callApp(app, `/api/blueprints/${input.blueprintId}/file`, { signal: ctx.signal })
    const bytes = new Uint8Array(await res.arrayBuffer())
    ctx.log.info('analysing', { blueprintId: input.blueprintId, bytes: bytes.byteLength, provider: provider.name, attempt: job.attempt })
    const fixtures = await provider.analyzeBlueprint(bytes, input.mime, { signal: ctx.signal })
    await report(app, input.blueprintId, { ...base, status: 'analyzed', fixtures, provider: provider.name }, ctx.signal)
    ctx.setContext('fixtures', fixtures.length)
    return { fixtures, provider: provider.name }
  } catch (e) {
    // The app hears of a failure that ends the stage; a retry to come keeps the blueprint "analyzing".
    const final = !retryable(e) || job.attempt >= ANALYSIS_ATTEMPTS
    const refusedByApp = e instanceof TerminalError && e.code === 'APP_REFUSED'
    if (final && !refusedByApp && !ctx.signal.aborted) {
      const error = { code: (e as { code?: unknown }).code === undefined ? 'ANALYSIS_FAILED' : String((e as { code: unknown }).code).slice(0, 128), message: (e instanceof Error ? e.message : String(e)).slice(0, 2000) || 'failed' }
      await report(app, input.blueprintId, { ...base, status: 'failed', error }, ctx.signal).catch((r: unknown) => ctx.log.error('could not report the failure to the app', { error: r instanceof Error ? r.message : String(r) }))
    }
    throw e
  }
}
