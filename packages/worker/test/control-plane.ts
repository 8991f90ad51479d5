import { Auth } from '@onepipe/sdk'
import { ControlPlane } from '@onepipe/pipelines'
import { testDatabase, waitFor } from '@onepipe/testing'

// The real control plane on a fresh schema, with an application and its API key,
// and the few calls of the pipeline API the worker tests need (docs/protocol/workers.md).

const SECRET = 'worker-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz'

export interface StageView {
  name: string
  status: string
  output: unknown
  error: unknown
  attempts: number
  raw: Record<string, unknown>
}

export interface PipelineView {
  status: string
  stages: StageView[]
  context: Record<string, unknown>
  raw: Record<string, unknown>
}

type Json = Record<string, unknown>

export interface Plane {
  url: string
  key: string
  /** A call of the pipeline API with the application's key; the parsed body. */
  api(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: Json | undefined }>
  /** Creates a pipeline from a definition; its id. */
  run(definition: unknown): Promise<string>
  pipeline(id: string): Promise<PipelineView>
  /** Waits until the pipeline is Completed, Failed or Cancelled. */
  finished(id: string, timeoutMs?: number): Promise<PipelineView>
  stop(): Promise<void>
}

const FINAL = ['Completed', 'Failed', 'Cancelled']

export async function startPlane(): Promise<Plane> {
  const { db, cleanup } = await testDatabase()
  const auth = Auth.create('workers').db(db).secret(SECRET).build()
  await auth.ready()
  const app = await auth.applications.create({ name: 'workers' })
  const { key } = await auth.apiKeys.create(app.id, { name: 'k' })
  const cp = ControlPlane.create().db(db).auth(auth).port(0).build()
  await cp.start()
  const url = cp.url
  const api: Plane['api'] = async (method, path, body) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { 'x-api-key': key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const text = await res.text()
    return { status: res.status, body: text ? (JSON.parse(text) as Json) : undefined }
  }
  const pipeline = async (id: string): Promise<PipelineView> => {
    const r = await api('GET', `/pipelines/${id}`)
    if (r.status !== 200) throw new Error(`GET /pipelines/${id} answered ${r.status}: ${JSON.stringify(r.body)}`)
    return view(r.body ?? {})
  }
  return {
    url,
    key,
    api,
    async run(definition) {
      const r = await api('POST', '/pipelines', definition)
      if (r.status !== 201) throw new Error(`POST /pipelines answered ${r.status}: ${JSON.stringify(r.body)}`)
      return (r.body as { pipelineId: string }).pipelineId
    },
    pipeline,
    finished: (id, timeoutMs = 30_000) => waitFor(async () => {
      const p = await pipeline(id)
      return FINAL.includes(p.status) ? p : undefined
    }, { timeoutMs, what: `pipeline ${id} to finish` }),
    async stop() {
      await cp.stop()
      await auth.close()
      await cleanup()
    },
  }
}

// The GET answer is "the pipeline, its stages with statuses, attempts, outputs and errors, its context items":
// read it by those names, accepting the spellings the protocol page uses elsewhere.
function view(b: Json): PipelineView {
  const p = (b.pipeline ?? b) as Json
  const stages = (p.stages ?? b.stages ?? []) as Json[]
  return {
    status: p.status as string,
    context: (p.context ?? b.context ?? {}) as Record<string, unknown>,
    stages: stages.map((s) => ({
      name: (s.stageName ?? s.name) as string,
      status: s.status as string,
      output: s.output,
      error: s.error,
      attempts: Array.isArray(s.attempts) ? s.attempts.length : Number(s.attempts ?? s.attempt ?? 0),
      raw: s,
    })),
    raw: b,
  }
}

/** The stage of that name. */
export function stage(p: PipelineView, name: string): StageView {
  const s = p.stages.find((x) => x.name === name)
  if (!s) throw new Error(`no stage "${name}" in ${JSON.stringify(p.raw)}`)
  return s
}
