import { api, enc } from './http'
import type { LogLine, Pipeline, PipelineSummary, Template, Worker, WorkerEvent } from './types'

export interface PipelineFilters {
  status?: string | undefined
  appId?: string | undefined
  q?: string | undefined
  from?: string | undefined
  to?: string | undefined
}

// Today's routes name a pipeline's id `pipelineId`, docs/dashboard.md `id`: both are read.
type Raw<T> = Omit<T, 'id'> & { id?: string; pipelineId?: string }
const norm = <T extends { id: string }>(p: Raw<T>): T => ({ ...p, id: p.id ?? p.pipelineId ?? '' }) as T

const base = '/__onepipe/pipelines'

export const pipelinesApi = {
  list: async (f: PipelineFilters, cursor: string | undefined, limit = 50) => {
    const r = await api<{ pipelines: Raw<PipelineSummary>[]; nextCursor?: string | null }>(base, { query: { ...f, limit, cursor } })
    return { pipelines: r.pipelines.map(norm<PipelineSummary>), nextCursor: r.nextCursor ?? undefined }
  },
  get: async (id: string) => norm<Pipeline>(await api<Raw<Pipeline>>(`${base}/${enc(id)}`)),
  logs: (id: string, after?: number | string) => api<{ logs: LogLine[] }>(`${base}/${enc(id)}/logs`, { query: { after } }),
  cancel: (id: string) => api<{ status: string }>(`${base}/${enc(id)}/cancel`, { method: 'POST' }),
  rerun: (stageId: string, following: boolean) => api<unknown>(`${base}/stages/${enc(stageId)}/rerun`, { method: 'POST', body: following ? { following: true } : {} }),
  skip: (stageId: string) => api<unknown>(`${base}/stages/${enc(stageId)}/skip`, { method: 'POST' }),
  resume: (stageId: string, approve: boolean, reason?: string) => resume(stageId, approve, reason),
  templates: () => api<{ templates: Template[] }>(`${base}/templates`),
  start: async (name: string, body: { appId: string; input?: unknown; keywords?: string[] }) =>
    norm<Pipeline>(await api<Raw<Pipeline>>(`${base}/templates/${enc(name)}/start`, { method: 'POST', body })),
  workers: () => api<{ workers: Worker[] }>(`${base}/workers`, { query: { limit: 200 } }),
  workerEvents: (id: string) => api<{ events: WorkerEvent[] }>(`${base}/workers/${enc(id)}/events`),
  drain: (id: string) => api<{ drain: boolean }>(`${base}/workers/${enc(id)}/drain`, { method: 'POST' }),
}

/** Approves or rejects a stage waiting for approval (docs/pipelines.md: `approved` or `rejected`). */
async function resume(stageId: string, approve: boolean, reason?: string): Promise<unknown> {
  return api<unknown>(`${base}/stages/${enc(stageId)}/resume`, { method: 'POST', body: { decision: approve ? 'approved' : 'rejected', ...(reason ? { reason } : {}) } })
}

export const pipelineKeys = {
  lists: ['pipelines', 'list'] as const,
  list: (f: PipelineFilters) => ['pipelines', 'list', f] as const,
  detail: (id: string) => ['pipeline', id] as const,
  logs: (id: string) => ['pipeline', id, 'logs'] as const,
  workers: ['pipelines', 'workers'] as const,
  templates: ['pipelines', 'templates'] as const,
}
