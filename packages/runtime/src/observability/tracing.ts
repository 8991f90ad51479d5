import { type Logger, tracingEnabled } from '@onepipe/core'
import { context, propagation, trace } from '@opentelemetry/api'
import type { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'

/**
 * The tracer provider a `serve()` registered; `shutdown()` exports what is buffered and lets it go.
 *
 * @example
 * ```ts
 * const tracing: Tracing | undefined = await startTracing({ instanceId: 'worker-1', version: '1.0.0' }, logger)
 * await tracing?.shutdown(2000)
 * ```
 */
export interface Tracing {
  /** Flushes buffered spans (at most `timeoutMs`), then unregisters the provider once its last `serve()` is done. */
  shutdown(timeoutMs?: number): Promise<void>
}

// One provider per process, shared by every serve() in it (tests run several):
// the API takes one global provider, and the last serve() to stop unregisters it.
let shared: { provider: NodeTracerProvider; users: number } | undefined

/**
 * What names the process in its spans: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` win over these.
 *
 * @example
 * ```ts
 * const id: TracingIdentity = { instanceId: newInstanceId(), version: process.env.ONEPIPE_VERSION ?? '0.0.0' }
 * ```
 */
export interface TracingIdentity {
  instanceId: string
  version: string
}

/**
 * Registers an OpenTelemetry tracer provider that exports spans over
 * OTLP/HTTP (JSON) in batches, when `OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and `OTEL_SDK_DISABLED` is
 * not `true`); the exporter takes its URL, headers, timeout and
 * compression from the standard `OTEL_EXPORTER_OTLP_*` variables, the
 * batch processor from `OTEL_BSP_*`, the sampler from `OTEL_TRACES_SAMPLER`.
 * Without an endpoint nothing is registered and OnePipe's spans stay the
 * API's no-ops. A provider the app registered itself is left alone (its
 * exporters get OnePipe's spans). The SDK and the exporter are loaded only
 * then: an app that does not export traces does not pay for loading them
 * at every start.
 *
 * @example
 * ```ts
 * const tracing = await startTracing({ instanceId, version: '1.0.0' }, logger)
 * // …
 * await tracing?.shutdown(5000)
 * ```
 */
export async function startTracing(id: TracingIdentity, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<Tracing | undefined> {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT
  if (!endpoint || env.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return undefined
  if (!shared) {
    if (tracingEnabled()) {
      logger.info({}, 'a tracer provider is already registered in this process; OnePipe traces through it and does not add its own')
      return undefined
    }
    const [{ OTLPTraceExporter }, { defaultResource, detectResources, envDetector, resourceFromAttributes }, { BatchSpanProcessor, NodeTracerProvider }] = await Promise.all([
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/sdk-trace-node'),
    ])
    // Another serve() of this process may have registered one while this one loaded the SDK.
    if (shared) return startTracing(id, logger, env)
    const resource = defaultResource()
      .merge(resourceFromAttributes({ 'service.name': 'onepipe-app', 'service.version': id.version, 'service.instance.id': id.instanceId }))
      .merge(detectResources({ detectors: [envDetector] }))
    const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] })
    provider.register()
    shared = { provider, users: 0 }
    logger.info({ endpoint, service: resource.attributes['service.name'] }, 'exporting traces over OTLP/HTTP')
  }
  const s = shared
  s.users++
  let stopped: Promise<void> | undefined
  return {
    shutdown(timeoutMs = 5000) {
      stopped ??= (async () => {
        s.users--
        const last = s.users === 0 && shared === s
        if (last) shared = undefined
        let t: NodeJS.Timeout | undefined
        const late = new Promise<'late'>((resolve) => (t = setTimeout(() => resolve('late'), timeoutMs)))
        try {
          // The last one out also shuts the exporter down; the others only push out what they buffered.
          const r = await Promise.race([last ? s.provider.shutdown() : s.provider.forceFlush(), late])
          if (r === 'late') logger.warn({ timeoutMs }, 'spans not exported within the shutdown budget were dropped')
        } catch (err) {
          logger.warn({ err }, 'exporting the last spans failed; they were dropped')
        } finally {
          clearTimeout(t)
          if (last) {
            trace.disable()
            context.disable()
            propagation.disable()
          }
        }
      })()
      return stopped
    },
  }
}
