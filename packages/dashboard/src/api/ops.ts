import { api, enc } from './http'
import type { ChannelCall, ChannelKey, CronExecution, CronJob, FlowEvent, Projection } from './types'

const o = '/__onepipe'

export const cronApi = {
  jobs: () => api<{ jobs: CronJob[] }>(`${o}/cron`),
  history: (name: string, limit = 50) => api<{ executions: CronExecution[] }>(`${o}/cron/${enc(name)}/history`, { query: { limit } }),
  trigger: (name: string) => api<{ executionId: string }>(`${o}/cron/${enc(name)}/trigger`, { method: 'POST' }),
  pause: (name: string) => api<CronJob>(`${o}/cron/${enc(name)}/pause`, { method: 'POST' }),
  resume: (name: string) => api<CronJob>(`${o}/cron/${enc(name)}/resume`, { method: 'POST' }),
}

export const flowsApi = {
  events: (name: string, offset: number | undefined, limit: number) =>
    api<{ events: FlowEvent[]; nextOffset: number }>(`${o}/flows/${enc(name)}/events`, { query: { offset, limit } }),
  streamUrl: (name: string) => `${o}/flows/${enc(name)}/stream`,
}

export const signalsApi = {
  read: (name: string) => api<{ value: unknown; version: number }>(`${o}/signals/${enc(name)}`),
  streamUrl: (name: string) => `${o}/signals/${enc(name)}/stream`,
}

export const projectionsApi = {
  list: () => api<{ projections: Projection[] }>(`${o}/projections`),
  state: (name: string, limit = 100) =>
    api<{ keyed: boolean; state?: unknown; entries?: [string, unknown][] }>(`${o}/projections/${enc(name)}/state`, { query: { limit } }),
  rebuild: (name: string) => api<unknown>(`${o}/projections/${enc(name)}/rebuild`, { method: 'POST' }),
}

export const channelsApi = {
  calls: (name: string, limit = 50) => api<{ calls: ChannelCall[] }>(`${o}/channels/${enc(name)}/calls`, { query: { limit } }),
  keys: (name: string, limit = 50) => api<{ keys: ChannelKey[] }>(`${o}/channels/${enc(name)}/keys`, { query: { limit } }),
}
