import { api, enc } from './http'
import type { ApiKey, Application } from './types'

const a = '/__onepipe/auth'

export const accountsApi = {
  applications: () => api<{ applications: Application[] }>(`${a}/applications`),
  createApplication: (name: string) => api<{ application: Application }>(`${a}/applications`, { method: 'POST', body: { name } }),
  keys: (appId: string) => api<{ keys: ApiKey[] }>(`${a}/applications/${enc(appId)}/keys`),
  createKey: (appId: string, name: string, roles: string[]) =>
    api<{ key: string; apiKey: ApiKey }>(`${a}/applications/${enc(appId)}/keys`, { method: 'POST', body: { name, roles } }),
  disableKey: (id: string) => api<{ apiKey: ApiKey }>(`${a}/keys/${enc(id)}/disable`, { method: 'POST' }),
  rotateKey: (id: string, overlap?: string) =>
    api<{ key: string; apiKey: ApiKey }>(`${a}/keys/${enc(id)}/rotate`, { method: 'POST', body: overlap ? { overlap } : {} }),
}

export const accountKeys = { applications: ['applications'] as const, keys: (id: string) => ['applications', id, 'keys'] as const }
