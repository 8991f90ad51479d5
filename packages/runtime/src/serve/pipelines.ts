import type { Component } from '@onepipe/core'
import { ControlPlane } from '@onepipe/pipelines'
import { Pipeline, type Auth } from '@onepipe/sdk'

/**
 * Pipelines under serve(): templates need a control plane to hand their
 * stages to workers, so an app that passes templates and no ControlPlane
 * gets one (its worker API on `ONEPIPE_WORKERS_PORT`, default 8081), and
 * every control plane checks API keys with the app's Auth.
 */
export function wirePipelines(components: Component[], auth: Auth | undefined): void {
  const templates = components.filter((c): c is Pipeline => c instanceof Pipeline)
  let planes = components.filter((c): c is ControlPlane => c instanceof ControlPlane)
  if (templates.length > 0 && planes.length === 0) {
    const cp = ControlPlane.create().templates(templates).build()
    components.push(cp)
    planes = [cp]
  }
  if (auth) for (const cp of planes) cp.useAuth(auth)
}
