import { REQUEST_ID_KEY, failSpan, onepipeTracer, traceContext } from '@onepipe/core'
import { SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api'

// Methods the HTTP semantic conventions name as they are; anything else is `_OTHER`.
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'])

type NodeIncoming = { url?: string; headers: Record<string, string | string[] | undefined> }

/** The server span of one request and the context its handler runs in. */
export interface ServerSpan {
  span: Span
  /** The span, plus the request id (for the log lines of the request). */
  ctx: Context
  method: string
}

/**
 * Starts the HTTP server span of a request when tracing is on (undefined
 * otherwise, at the cost of one lookup): a child of the caller's span when
 * the request carries a W3C `traceparent`, named by its method until the
 * route is known.
 *
 * @example
 * ```ts
 * const s = startServerSpan(req, env, requestId)
 * const res = s ? context.with(s.ctx, () => app.fetch(req, env)) : app.fetch(req, env)
 * ```
 */
export function startServerSpan(req: Request, env: Record<string, unknown> | undefined, requestId: string): ServerSpan | undefined {
  const tracer = onepipeTracer()
  if (!tracer) return undefined
  // Node's parsed request when on @hono/node-server: no Fetch Headers object or URL parse for two lookups.
  const incoming = env?.incoming as NodeIncoming | undefined
  const header = (name: string): string | undefined => {
    const v = incoming ? incoming.headers[name] : (req.headers.get(name) ?? undefined)
    return typeof v === 'string' ? v : undefined
  }
  const parent = traceContext(header('traceparent'), header('tracestate'))
  const method = METHODS.has(req.method) ? req.method : '_OTHER'
  const target = incoming?.url ?? new URL(req.url).pathname
  const q = target.indexOf('?')
  const attributes: Attributes = {
    'http.request.method': method,
    'url.path': q < 0 ? target : target.slice(0, q),
    'onepipe.request_id': requestId,
  }
  if (method === '_OTHER') attributes['http.request.method_original'] = req.method
  const ua = header('user-agent')
  if (ua) attributes['user_agent.original'] = ua
  const span = tracer.startSpan(method === '_OTHER' ? 'HTTP' : method, { kind: SpanKind.SERVER, attributes }, parent)
  return { span, ctx: trace.setSpan(parent, span).setValue(REQUEST_ID_KEY, requestId), method }
}

/**
 * Ends a server span with the response: named `METHOD /route/:pattern` when
 * a route matched, the status code set, and ERROR for a 5xx or a thrown
 * error (a 4xx is the client's, not the server's, per the conventions).
 *
 * @example
 * ```ts
 * endServerSpan(s, info.route, res.status)
 * ```
 */
export function endServerSpan(s: ServerSpan, route: string | undefined, status: number, err?: unknown): void {
  if (route !== undefined) {
    s.span.setAttribute('http.route', route)
    s.span.updateName(`${s.method === '_OTHER' ? 'HTTP' : s.method} ${route}`)
  }
  s.span.setAttribute('http.response.status_code', status)
  if (err !== undefined) failSpan(s.span, err)
  else if (status >= 500) {
    s.span.setAttribute('error.type', String(status))
    s.span.setStatus({ code: SpanStatusCode.ERROR })
  }
  s.span.end()
}
