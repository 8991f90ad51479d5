import { api, enc, reach } from './http'
import type { Catalog, Instance, User } from './types'

export const appApi = {
  me: () => api<{ user: User }>('/__onepipe/auth/me'),
  login: (email: string, password: string) =>
    api<{ user: User }>('/__onepipe/auth/login', { method: 'POST', body: { email, password, mode: 'cookie' }, session: false }),
  logout: () => api<undefined>('/__onepipe/auth/logout', { method: 'POST', session: false }),
  catalog: () => api<Catalog>('/__onepipe/catalog'),
  instances: () => api<{ instances: Instance[] }>('/__onepipe/instances'),
}

/** `/health` and `/ready` answer a body with their 503 too; both are shown as they are. */
export async function probe(path: '/health' | '/ready'): Promise<{ ok: boolean; status: number; body: unknown }> {
  const res = await reach(path, { headers: { accept: 'application/json' }, credentials: 'same-origin' }, 'GET', path)
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // Shown as text.
  }
  return { ok: res.ok, status: res.status, body }
}

const has = (u: User | undefined, permission: string, roles: string[]): boolean =>
  !!u && (u.permissions?.includes(permission) === true || u.roles.some((r) => roles.includes(r)))

/** operator and admin act (rerun, start, trigger…); admin ⊇ operator ⊇ viewer (docs/auth.md). */
export const canAct = (u: User | undefined): boolean => has(u, 'onepipe:write', ['operator', 'admin'])
export const isAdmin = (u: User | undefined): boolean => has(u, 'onepipe:admin', ['admin'])

export { enc }
