import { api, enc } from './http'
import type { RunDetail, RunSummary } from './types'

const base = '/__onepipe/workflows'

export const workflowsApi = {
  runs: (name: string, f: { status?: string | undefined; input?: string | undefined; limit?: number; offset?: number }) =>
    api<{ runs: RunSummary[] }>(`${base}/${enc(name)}/runs`, { query: { status: f.status, input: f.input, limit: f.limit ?? 50, offset: f.offset } }),
  run: (id: string) => api<RunDetail>(`${base}/runs/${enc(id)}`),
  start: (name: string, input: unknown, workflowId?: string) =>
    api<{ workflowId: string; created: boolean; status: string }>(`${base}/${enc(name)}/start`, { method: 'POST', body: { input, ...(workflowId ? { workflowId } : {}) } }),
  signal: (id: string, signal: string, data: unknown) =>
    api<unknown>(`${base}/runs/${enc(id)}/signal/${enc(signal)}`, { method: 'POST', body: data }),
  cancel: (id: string) => api<{ workflowId: string; status: string }>(`${base}/runs/${enc(id)}/cancel`, { method: 'POST' }),
  retry: (id: string) => api<{ workflowId: string; status: string }>(`${base}/runs/${enc(id)}/retry`, { method: 'POST' }),
}

export const RUN_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const
