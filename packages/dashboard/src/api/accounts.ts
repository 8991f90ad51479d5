import { api, enc } from './http'
import type { Account, ApiKey, Application } from './types'

const a = '/__onepipe/auth'

export const accountsApi = {
  /** One page of accounts by email; `after` is the last email of the page before. */
  users: (limit: number, after?: string) => api<{ users: Account[] }>(`${a}/users`, { query: { limit, after } }),
  createUser: (email: string, password: string, roles: string[]) => api<{ user: Account }>(`${a}/users`, { method: 'POST', body: { email, password, roles } }),
  setUserDisabled: (id: string, disabled: boolean) => api<{ user: Account }>(`${a}/users/${enc(id)}/${disabled ? 'disable' : 'enable'}`, { method: 'POST' }),
  setUserRoles: (id: string, roles: string[]) => api<{ user: Account }>(`${a}/users/${enc(id)}/roles`, { method: 'PUT', body: { roles } }),
  applications: () => api<{ applications: Application[] }>(`${a}/applications`),
  createApplication: (name: string) => api<{ application: Application }>(`${a}/applications`, { method: 'POST', body: { name } }),
  keys: (appId: string) => api<{ keys: ApiKey[] }>(`${a}/applications/${enc(appId)}/keys`),
  createKey: (appId: string, name: string, roles: string[]) =>
    api<{ key: string; apiKey: ApiKey }>(`${a}/applications/${enc(appId)}/keys`, { method: 'POST', body: { name, roles } }),
  disableKey: (id: string) => api<{ apiKey: ApiKey }>(`${a}/keys/${enc(id)}/disable`, { method: 'POST' }),
  rotateKey: (id: string, overlap?: string) =>
    api<{ key: string; apiKey: ApiKey }>(`${a}/keys/${enc(id)}/rotate`, { method: 'POST', body: overlap ? { overlap } : {} }),
}

export const accountKeys = { users: ['users'] as const, applications: ['applications'] as const, keys: (id: string) => ['applications', id, 'keys'] as const }
