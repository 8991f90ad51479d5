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
  /** Replaces the value; the signal's schema decides what it accepts (400 otherwise). */
  set: (name: string, value: unknown) => api<{ value: unknown; version: number }>(`${o}/signals/${enc(name)}`, { method: 'PUT', body: value }),
  streamUrl: (name: string) => `${o}/signals/${enc(name)}/stream`,
}

export const projectionsApi = {
  list: () => api<{ projections: Projection[] }>(`${o}/projections`),
  state: (name: string, limit = 100) =>
    api<{ keyed: boolean; state?: unknown; entries?: [string, unknown][] }>(`${o}/projections/${enc(name)}/state`, { query: { limit } }),
  rebuild: (name: string) => api<unknown>(`${o}/projections/${enc(name)}/rebuild`, { method: 'POST' }),
}

// docs/dashboard.md names a call's fields key/outcome/at and a key's state; the route as it is
// today says idempotencyKey/status/createdAt and status. Both are read.
type RawCall = Partial<ChannelCall> & { idempotencyKey?: string | null; status?: string; createdAt?: string }
type RawKey = Partial<ChannelKey> & { status?: string }

export const channelsApi = {
  calls: async (name: string, limit = 50) => {
    const r = await api<{ calls: RawCall[] }>(`${o}/channels/${enc(name)}/calls`, { query: { limit } })
    return r.calls.map((c, i): ChannelCall => ({
      id: String(c.id ?? i),
      key: c.key ?? c.idempotencyKey ?? null,
      outcome: c.outcome ?? c.status ?? 'unknown',
      durationMs: c.durationMs ?? null,
      error: c.error ?? null,
      at: c.at ?? c.createdAt ?? '',
    }))
  },
  keys: async (name: string, limit = 50) => {
    const r = await api<{ keys: RawKey[] }>(`${o}/channels/${enc(name)}/keys`, { query: { limit } })
    return r.keys.map((k): ChannelKey => ({ key: k.key ?? '', state: k.state ?? k.status ?? 'unknown', createdAt: k.createdAt ?? '', expiresAt: k.expiresAt ?? null }))
  },
}
