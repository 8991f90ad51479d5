/** One failed call to OnePipe's API, as its error body says it (`{ error: { code, message, details?, requestId } }`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | undefined,
    readonly details: unknown,
    readonly method: string,
    readonly path: string,
    /** Seconds a 429 asks to wait, from `Retry-After` or the details' `retryAfterSeconds`. */
    readonly retryAfter?: number,
  ) {
    super(message)
    this.name = 'ApiError'
  }

  /** The role a 403 was about: reading needs viewer, acting operator, accounts admin (docs/auth.md). */
  get roleNeeded(): 'viewer' | 'operator' | 'admin' {
    if (this.path.startsWith('/__onepipe/auth/')) return 'admin'
    return this.method === 'GET' ? 'viewer' : 'operator'
  }
}

export const isApiError = (e: unknown): e is ApiError => e instanceof ApiError

/** The call never reached the app: it is down, restarting, or the network is. */
export const isNetworkError = (e: unknown): boolean => isApiError(e) && e.status === 0

let unreachable: string | undefined
const reachListeners = new Set<() => void>()
const setUnreachable = (why: string | undefined) => {
  if (why === unreachable) return
  unreachable = why
  for (const l of reachListeners) l()
}

/**
 * Why the app could not be reached on the last call, until a call gets any
 * answer again: one banner says it, instead of an error on every panel.
 */
export const reachability = {
  subscribe: (l: () => void) => {
    reachListeners.add(l)
    return () => void reachListeners.delete(l)
  },
  get: (): string | undefined => unreachable,
}

/** fetch, with a refused connection as a NETWORK_ERROR ApiError; any answer at all means the app is reachable. */
export async function reach(url: string, init: RequestInit, method: string, path: string): Promise<Response> {
  try {
    const res = await fetch(url, init)
    setUnreachable(undefined)
    return res
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e)
    setUnreachable(message)
    throw new ApiError(0, 'NETWORK_ERROR', message, undefined, undefined, method, path)
  }
}

export function csrfToken(): string | undefined {
  const m = /(?:^|;\s*)onepipe_csrf=([^;]*)/.exec(document.cookie)
  return m?.[1] ? decodeURIComponent(m[1]) : undefined
}

type Query = Record<string, string | number | boolean | null | undefined>

export interface CallOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  body?: unknown
  query?: Query
  /** false for login: its 401 is a wrong password, not an ended session. */
  session?: boolean
}

let onUnauthorized: (() => void) | undefined
/** Where the page goes when the session is gone for good (the login page). */
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn
}

export function withQuery(path: string, query?: Query): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null && v !== '') q.set(k, String(v))
  const s = q.toString()
  return s ? `${path}?${s}` : path
}

function headers(method: string): Record<string, string> {
  const h: Record<string, string> = { accept: 'application/json' }
  if (method !== 'GET') {
    h['content-type'] = 'application/json'
    const csrf = csrfToken()
    if (csrf) h['x-csrf-token'] = csrf
  }
  return h
}

let refreshing: Promise<boolean> | undefined
/**
 * The access cookie lives 15 minutes; the refresh cookie renews it. Calls
 * that fail together share one refresh, since a refresh token is spent by use.
 */
export function refreshSession(): Promise<boolean> {
  if (!csrfToken()) return Promise.resolve(false)
  refreshing ??= fetch('/__onepipe/auth/refresh', { method: 'POST', headers: headers('POST'), body: '{}', credentials: 'same-origin' })
    .then((r) => r.ok, () => false)
    .finally(() => {
      refreshing = undefined
    })
  return refreshing
}

const seconds = (v: unknown): number | undefined => {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? Math.ceil(n) : undefined
}

async function toError(res: Response, method: string, path: string): Promise<ApiError> {
  const text = await res.text().catch(() => '')
  const header = seconds(res.headers.get('retry-after'))
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown; requestId?: unknown } }
    const e = body.error
    if (e && typeof e.code === 'string') {
      const retryAfter = header ?? seconds((e.details as { retryAfterSeconds?: unknown } | null | undefined)?.retryAfterSeconds)
      return new ApiError(res.status, e.code, typeof e.message === 'string' ? e.message : e.code, typeof e.requestId === 'string' ? e.requestId : undefined, e.details, method, path, retryAfter)
    }
  } catch {
    // Not OnePipe's JSON: a proxy's page or an empty body; shown below as it came.
  }
  return new ApiError(res.status, `HTTP_${res.status}`, text.slice(0, 300) || res.statusText || 'Request failed', res.headers.get('x-request-id') ?? undefined, undefined, method, path, header)
}

/** Calls the API: JSON in and out, CSRF on changes, a refresh then the login page on 401. */
export async function api<T>(path: string, o: CallOptions = {}): Promise<T> {
  const method = o.method ?? 'GET'
  const url = withQuery(path, o.query)
  const send = (): Promise<Response> =>
    reach(url, { method, headers: headers(method), credentials: 'same-origin', ...(method === 'GET' ? {} : { body: o.body === undefined ? '{}' : JSON.stringify(o.body) }) }, method, path)
  let res = await send()
  if (res.status === 401 && o.session !== false) {
    if (await refreshSession()) res = await send()
    if (res.status === 401) onUnauthorized?.()
  }
  if (!res.ok) throw await toError(res, method, path)
  const text = await res.text()
  return (text ? JSON.parse(text) : undefined) as T
}

export const enc = encodeURIComponent
