// The dashboard (docs/dashboard.md): its static files, and the routes of its
// internal API that belong to the app rather than to one primitive (the
// catalog, the instances, the live feed). Each primitive mounts its own.
import type { Component, Database } from '@onepipe/core'
import { ControlPlane } from '@onepipe/pipelines'
import { respondError, type AuthUser, type Logger } from '@onepipe/sdk'
import type { Hono } from 'hono'
import { listInstances } from '../serve/instance.js'
import { catalogOf } from './catalog.js'
import { liveRoute } from './live.js'
import { dashboardDir, mountDashboardFiles } from './static.js'

export { DASHBOARD_BASE, dashboardDir } from './static.js'
export { LiveQueue, LIVE_QUEUE_LIMIT } from './live.js'

/** What the dashboard's routes need of the app. */
export interface DashboardDeps {
  components: readonly Component[]
  db: () => Database
  app: { name: string; version: string; instanceId: string }
  auth: boolean
  logger: Logger
  signal: AbortSignal
  /** false: no static files (the API routes stay, they are the app's operators' API). */
  files: boolean
}

/**
 * Mounts `GET /__onepipe/catalog`, `GET /__onepipe/instances`,
 * `GET /__onepipe/live` and, unless turned off, the dashboard's files under
 * `/__onepipe/dashboard/` (public: they hold no data; every API call the
 * page makes is authenticated).
 */
export function mountDashboard(app: Hono, d: DashboardDeps): void {
  const catalog = catalogOf(d.components)
  app.get('/__onepipe/catalog', (c) => {
    const user = c.get('user' as never) as AuthUser | undefined
    return c.json({ app: d.app, user: user ?? null, ...catalog, features: { ...catalog.features, auth: d.auth } })
  })
  app.get('/__onepipe/instances', async (c) => {
    try {
      return c.json({ instances: await listInstances(d.db()) })
    } catch (e) {
      return respondError(c, e, d.logger)
    }
  })
  const planes = d.components.filter((c): c is ControlPlane => c instanceof ControlPlane)
  app.get('/__onepipe/live', liveRoute(planes.map((cp) => (fn) => cp.onChange(fn)), d.signal, d.logger))
  if (d.files) mountDashboardFiles(app, dashboardDir())
}
