import { TransportError } from '@onepipe/core'
import { WorkerAuthError, WorkerHttpError } from '../errors/index.js'

/** One answer of the control plane: its status and its parsed JSON body (`undefined` for none). */
export interface HttpAnswer {
  status: number
  body: unknown
  /** From `Retry-After` on a 429 or 503, in ms. */
  retryAfterMs: number | undefined
}

/** Options of one call. */
export interface CallOptions {
  /** Aborts the call (stop(), drain); the caller checks it before reading an error as a failure. */
  signal?: AbortSignal
  /** Longest the whole call may take, in ms (default 15 000). */
  timeoutMs?: number
  /** Send the API key even when a session exists (bootstrap, and calls after the session ended). */
  useKey?: boolean
}

const DEFAULT_TIMEOUT_MS = 15_000

/**
 * The worker's side of the HTTP protocol (docs/protocol/workers.md): base
 * URL, credentials and JSON bodies. It sends the session token once there is
 * one and the API key before (or when asked), so a revoked session can be
 * replaced by a new bootstrap without a restart.
 */
export class ControlPlaneClient {
  readonly baseUrl: string
  readonly #apiKey: string
  #token: string | undefined

  constructor(baseUrl: string, apiKey: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, '')
    this.#apiKey = apiKey
  }

  /** Uses this session token from now on (undefined: back to the API key). */
  setSession(token: string | undefined): void {
    this.#token = token
  }

  /**
   * POSTs a JSON text (already encoded: outputs are serialized once) or GETs
   * when `body` is undefined. Any HTTP status is an answer; only a call that
   * got none throws.
   *
   * @throws TransportError `WORKER_UNREACHABLE` (retryable) when the control plane could not be reached
   *   or did not answer within the timeout
   */
  async call(method: 'GET' | 'POST', path: string, body: string | undefined, o: CallOptions = {}): Promise<HttpAnswer> {
    const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS
    // Our own timer (not AbortSignal.timeout) so that it is cleared with the call and never outlives a stopped worker.
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), timeoutMs)
    const signal = o.signal ? AbortSignal.any([o.signal, timeout.signal]) : timeout.signal
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.#token !== undefined && !o.useKey) headers.authorization = `Bearer ${this.#token}`
    else headers['x-api-key'] = this.#apiKey
    if (body !== undefined) headers['content-type'] = 'application/json'
    const url = `${this.baseUrl}${path}`
    try {
      const res = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }), signal })
      const text = await res.text()
      let parsed: unknown = undefined
      if (text !== '') {
        try {
          parsed = JSON.parse(text)
        } catch {
          // A proxy's HTML error page: keep the text so the error says what came back.
          parsed = text.slice(0, 500)
        }
      }
      return { status: res.status, body: parsed, retryAfterMs: retryAfter(res.headers.get('retry-after')) }
    } catch (e) {
      const why = timeout.signal.aborted && !o.signal?.aborted ? `no answer within ${timeoutMs} ms` : e instanceof Error ? causeMessage(e) : String(e)
      throw new TransportError('WORKER_UNREACHABLE', `${method} ${url} failed: ${why}`, { cause: e })
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Like {@link call}, for calls that must succeed: returns the body of a 2xx.
   *
   * @throws WorkerAuthError on 401/403; WorkerHttpError on any other non-2xx; TransportError when unreachable
   */
  async expectOk(path: string, body: string, o: CallOptions = {}): Promise<unknown> {
    const r = await this.call('POST', path, body, o)
    if (r.status >= 200 && r.status < 300) return r.body
    throw httpError(`POST ${path}`, r)
  }
}

/** The typed error for a refused call: a WorkerAuthError for 401/403, else a WorkerHttpError. */
export function httpError(call: string, r: HttpAnswer): WorkerAuthError | WorkerHttpError {
  if (r.status === 401 || r.status === 403) return new WorkerAuthError(call, r.status, r.body)
  return new WorkerHttpError(call, r.status, r.body)
}

function retryAfter(h: string | null): number | undefined {
  if (h === null) return undefined
  const s = Number(h)
  if (Number.isFinite(s) && s >= 0) return s * 1000
  const at = Date.parse(h)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}

// undici says only "fetch failed"; the useful part (ECONNREFUSED…) is in the cause.
function causeMessage(e: Error): string {
  const c = (e as { cause?: unknown }).cause
  if (c instanceof Error) return `${e.message} (${(c as { code?: string }).code ?? c.message})`
  return e.message
}
