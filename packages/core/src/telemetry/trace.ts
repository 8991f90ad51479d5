// Tracing for every primitive, through the OpenTelemetry API only. Without a
// registered tracer provider (serve() registers one only when an OTLP
// endpoint is configured) every helper here returns before allocating a span:
// the work runs exactly as it would untraced.
import {
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  createContextKey,
  createTraceState,
  isSpanContextValid,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api'

/**
 * OpenTelemetry's span, context and attributes, under names that cannot clash with an app's own.
 *
 * @example
 * ```ts
 * const span: OtelSpan | undefined = startSpan('reindex')
 * ```
 */
export type { Span as OtelSpan, Context as OtelContext, Attributes as OtelAttributes }

/**
 * The instrumentation scope of OnePipe's spans.
 *
 * @example
 * ```ts
 * const mine = spans.filter((s) => s.instrumentationScope.name === TRACER_NAME)
 * ```
 */
export const TRACER_NAME = 'onepipe'

// The provider the API answers with while none is registered.
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate()

/**
 * OnePipe's tracer when a tracer provider is registered in this process
 * (by `serve()` or by the app itself), else undefined. Looked up on every
 * call rather than kept: a provider registered (or replaced) later is used
 * from then on, which a cached ProxyTracer would not do after a reset.
 *
 * @example
 * ```ts
 * const t = onepipeTracer()
 * if (t) t.startSpan('warm-up').end()
 * ```
 */
export function onepipeTracer(): Tracer | undefined {
  const p = trace.getTracerProvider()
  const d = p instanceof ProxyTracerProvider ? p.getDelegate() : p
  return d === NOOP_PROVIDER ? undefined : d.getTracer(TRACER_NAME)
}

/**
 * Whether spans are recorded in this process (a tracer provider is registered).
 *
 * @example
 * ```ts
 * if (tracingEnabled()) span.setAttribute('onepipe.batch', n)
 * ```
 */
export function tracingEnabled(): boolean {
  return onepipeTracer() !== undefined
}

/**
 * The kinds of span OnePipe starts (OpenTelemetry's SpanKind by name).
 *
 * @example
 * ```ts
 * const kind: OnePipeSpanKind = 'producer'
 * ```
 */
export type OnePipeSpanKind = 'internal' | 'server' | 'client' | 'producer' | 'consumer'

const KINDS: Record<OnePipeSpanKind, SpanKind> = {
  internal: SpanKind.INTERNAL,
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
}

/**
 * How a span starts: its kind, attributes, links, and parent (default: the active context).
 *
 * @example
 * ```ts
 * const o: OnePipeSpanOptions = { kind: 'consumer', parent: traceContext(event.traceparent), attributes: { 'messaging.system': 'onepipe' } }
 * ```
 */
export interface OnePipeSpanOptions {
  kind?: OnePipeSpanKind
  attributes?: Attributes
  links?: Link[]
  /** The context to start under; a new root when it holds no span. Default: the active context. */
  parent?: Context
}

/**
 * Starts a span (not made active), or answers undefined when nothing is
 * traced. For work that outlives one callback; end it with
 * {@link endSpan}.
 *
 * @example
 * ```ts
 * const span = startSpan('workflow.run process-order', { kind: 'consumer', parent: traceContext(row.traceparent) })
 * try { await run() } catch (e) { endSpan(span, e); throw e }
 * endSpan(span)
 * ```
 */
export function startSpan(name: string, o: OnePipeSpanOptions = {}): Span | undefined {
  const t = onepipeTracer()
  if (!t) return undefined
  return t.startSpan(name, { kind: KINDS[o.kind ?? 'internal'], ...(o.attributes ? { attributes: o.attributes } : {}), ...(o.links ? { links: o.links } : {}) }, o.parent ?? context.active())
}

/**
 * Runs `fn` with `span` as the active span (so spans started inside are its
 * children and log lines carry its ids); just runs it when there is no span.
 *
 * @example
 * ```ts
 * const out = await inSpan(span, () => handler(input))
 * ```
 */
export function inSpan<T>(span: Span | undefined, fn: () => T, parent?: Context): T {
  if (!span) return fn()
  return context.with(trace.setSpan(parent ?? context.active(), span), fn)
}

/**
 * Marks a span failed with `err` (status ERROR, the exception recorded as an
 * event, `error.type` set to the error's code or class name). `err` may be
 * an Error or a recorded one (`{ name, message, code }`).
 *
 * @example
 * ```ts
 * try { await step() } catch (e) { failSpan(span, e); throw e }
 * ```
 */
export function failSpan(span: Span | undefined, err: unknown): void {
  if (!span) return
  // A recorded failure (a SerializedError read back from the database) is a plain object with the same fields.
  const e = (typeof err === 'object' && err !== null ? err : { name: 'Error', message: String(err) }) as { name?: unknown; message?: unknown; code?: unknown; stack?: unknown }
  const name = typeof e.name === 'string' ? e.name : 'Error'
  const message = typeof e.message === 'string' ? e.message : String(err)
  span.recordException({ name, message, ...(typeof e.code === 'string' ? { code: e.code } : {}), ...(typeof e.stack === 'string' ? { stack: e.stack } : {}) })
  span.setAttribute('error.type', typeof e.code === 'string' ? e.code : name)
  span.setStatus({ code: SpanStatusCode.ERROR, message })
}

/**
 * Ends a span, failed with `err` when one is given.
 *
 * @example
 * ```ts
 * endSpan(span, outcome.ok ? undefined : outcome.error)
 * ```
 */
export function endSpan(span: Span | undefined, err?: unknown): void {
  if (!span) return
  if (err !== undefined) failSpan(span, err)
  span.end()
}

/**
 * Runs `fn` in a new active span that ends when `fn` settles; a throw or
 * rejection marks it failed and is passed on. Without a tracer provider
 * it only calls `fn` (with undefined), adding nothing.
 *
 * @example
 * ```ts
 * const receipt = await withSpan('channel.call pay', { kind: 'client', attributes: { 'onepipe.channel': 'pay' } }, () => pay(input))
 * ```
 */
export function withSpan<T>(name: string, o: OnePipeSpanOptions, fn: (span: Span | undefined) => Promise<T>): Promise<T> {
  const span = startSpan(name, o)
  if (!span) return fn(undefined)
  return context.with(trace.setSpan(o.parent ?? context.active(), span), async () => {
    try {
      return await fn(span)
    } catch (e) {
      failSpan(span, e)
      throw e
    } finally {
      span.end()
    }
  })
}

/**
 * The span active here, if one is recorded.
 *
 * @example
 * ```ts
 * activeSpan()?.setAttribute('onepipe.channel.replayed', true)
 * ```
 */
export function activeSpan(): Span | undefined {
  const s = trace.getSpan(context.active())
  return s?.isRecording() ? s : undefined
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/

/**
 * The W3C `traceparent` of the active span (or of `ctx`), for work that
 * continues elsewhere: a workflow run, a flow event. Null when nothing is
 * traced.
 *
 * @example
 * ```ts
 * await insertRun({ …, traceparent: currentTraceparent() })
 * ```
 */
export function currentTraceparent(ctx: Context = context.active()): string | null {
  const sc = trace.getSpanContext(ctx)
  if (!sc || !isSpanContextValid(sc)) return null
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`
}

/**
 * A context whose parent is the span a W3C `traceparent` names (remote), so
 * a span started under it continues that trace; the root context for a
 * missing or malformed value (per the W3C rules: version `ff`, all-zero ids
 * and a version-00 value with extra fields are refused).
 *
 * @example
 * ```ts
 * const span = startSpan('workflow.run x', { parent: traceContext(row.traceparent) })
 * ```
 */
export function traceContext(traceparent: string | null | undefined, tracestate?: string | null): Context {
  if (!traceparent) return ROOT_CONTEXT
  const m = TRACEPARENT.exec(traceparent.trim().toLowerCase())
  if (!m) return ROOT_CONTEXT
  const [, version, traceId, spanId, flags, rest] = m
  if (version === 'ff' || (version === '00' && rest !== undefined)) return ROOT_CONTEXT
  const sc = { traceId: traceId as string, spanId: spanId as string, traceFlags: parseInt(flags as string, 16) & 1, isRemote: true, ...(tracestate ? { traceState: createTraceState(tracestate) } : {}) }
  if (!isSpanContextValid(sc)) return ROOT_CONTEXT
  return trace.setSpanContext(ROOT_CONTEXT, sc)
}

/**
 * Where OnePipe keeps the request id in the active context (read by the log mixin).
 *
 * @example
 * ```ts
 * context.with(context.active().setValue(REQUEST_ID_KEY, requestId), handle)
 * ```
 */
export const REQUEST_ID_KEY = createContextKey('onepipe.request_id')

/**
 * The request id the active context carries (set by `serve()` for the
 * request being answered while tracing is on), if any.
 *
 * @example
 * ```ts
 * logger.info({ requestId: activeRequestId() }, 'charged')
 * ```
 */
export function activeRequestId(): string | undefined {
  const v = context.active().getValue(REQUEST_ID_KEY)
  return typeof v === 'string' ? v : undefined
}

/**
 * The fields a log line written here should carry to be found from its
 * trace: the active span's `traceId` and `spanId`, and the `requestId` of
 * the request `serve()` is tracing; undefined when there are none (always,
 * without a tracer provider). `createLogger()` adds them to every line; a
 * logger of the app's own can do the same.
 *
 * @example
 * ```ts
 * const log = pino({ mixin: () => traceLogFields() ?? {} })
 * ```
 */
export function traceLogFields(): { requestId?: string; traceId?: string; spanId?: string } | undefined {
  const ctx = context.active()
  const sc = trace.getSpanContext(ctx)
  const requestId = ctx.getValue(REQUEST_ID_KEY)
  if (!sc && requestId === undefined) return undefined
  const o: { requestId?: string; traceId?: string; spanId?: string } = {}
  if (typeof requestId === 'string') o.requestId = requestId
  if (sc && isSpanContextValid(sc)) {
    o.traceId = sc.traceId
    o.spanId = sc.spanId
  }
  return o
}
