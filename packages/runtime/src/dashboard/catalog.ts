import type { Component } from '@onepipe/core'
import { Channel, Cron, Flow, jsonSchema, Pipeline, Projection, Signal, Workflow } from '@onepipe/sdk'
import { ControlPlane } from '@onepipe/pipelines'

/**
 * What the app is made of, for the dashboard's navigation and forms
 * (docs/dashboard.md, `GET /__onepipe/catalog`): every primitive by name,
 * with the JSON Schemas of workflow and channel inputs.
 *
 * @example
 * ```ts
 * catalogOf(components) // { flows: [{ name: 'orders' }], workflows: [{ name: 'checkout', inputSchema: { type: 'object', … } }], … }
 * ```
 */
export function catalogOf(components: readonly Component[]) {
  const of = <T>(k: abstract new (...a: never[]) => T) => components.filter((c): c is Component & T => c instanceof k)
  const schema = (s: Parameters<typeof jsonSchema>[0], io: 'input' | 'output') => (s ? jsonSchema(s, io) : null)
  const templates = [...of(Pipeline), ...of(ControlPlane).flatMap((cp) => cp.templateList)]
  const seen = new Set<string>()
  return {
    flows: of(Flow).map((f) => ({ name: f.name })),
    signals: of(Signal).map((s) => ({ name: s.name })),
    projections: of(Projection).map((p) => ({ name: p.name, flow: p.flowName ?? null, keyed: p.keyed })),
    workflows: of(Workflow).map((w) => ({ name: w.name, inputSchema: schema(w.schemas.input, 'input') })),
    cron: of(Cron).map((c) => ({ name: c.name, schedule: c.schedule, timezone: c.timezone ?? null })),
    channels: of(Channel).map((c) => ({ name: c.name, idempotent: c.idempotent, inputSchema: schema(c.schemas.input, 'input'), outputSchema: schema(c.schemas.output, 'output') })),
    pipelines: templates
      .filter((t) => !seen.has(t.name) && seen.add(t.name))
      .map((t) => ({ name: t.name, stages: t.stages.map((s) => ({ name: s.name, handler: s.handler, dependsOn: s.dependsOn ?? [] })) })),
    features: { pipelines: of(ControlPlane).length > 0 || templates.length > 0 },
  }
}
