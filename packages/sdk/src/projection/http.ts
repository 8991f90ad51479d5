import { ValidationError, type Logger } from '@onepipe/core'
import type { Hono } from 'hono'
import { compressedJson, intParam, withErrors } from '../http/index.js'

/** What the routes use of their Projection (named structurally, so this file needs no import of projection.ts). */
interface RoutedProjection {
  readonly name: string
  readonly keyed: boolean
  readonly flowName: string | undefined
  status(): Promise<{ lastOffset: number; eventCount: number; version: number }>
  head(): Promise<number>
  get(key?: string): Promise<unknown>
  entries(): Promise<[string, unknown][]>
  rebuild(): Promise<void>
}

/** Projections mounted per app, so the one list route sees every projection of the app. */
const mounted = new WeakMap<object, RoutedProjection[]>()

async function statusView(p: RoutedProjection) {
  const [st, head] = await Promise.all([p.status(), p.head()])
  return { name: p.name, flow: p.flowName ?? null, keyed: p.keyed, position: st.lastOffset, head, lag: Math.max(0, head - st.lastOffset), eventCount: st.eventCount, version: st.version }
}

/**
 * The projection HTTP surface for operators (docs/dashboard.md):
 * `GET /__onepipe/projections` (`{ projections }`: position, flow head,
 * lag in events), `GET /__onepipe/projections/{name}/state?limit` (the
 * state, or the first `limit` entries of a keyed one, 1–1000, default
 * 100), `POST /__onepipe/projections/{name}/rebuild` (202: folds the flow
 * again from its start).
 */
export function mountProjectionRoutes(app: Hono, p: RoutedProjection, logger: Logger): void {
  const base = `/__onepipe/projections/${p.name}`
  const wrap = withErrors(logger)
  app.get(`${base}/state`, wrap(async (c) => {
    const limit = intParam(c, 'limit') ?? 100
    if (limit < 1 || limit > 1000) throw new ValidationError('query', [{ path: 'limit', message: 'must be between 1 and 1000' }])
    if (!p.keyed) return compressedJson(c, { keyed: false, state: (await p.get()) ?? null })
    const entries = await p.entries()
    return compressedJson(c, { keyed: true, total: entries.length, entries: entries.slice(0, limit) })
  }))
  app.post(`${base}/rebuild`, wrap(async (c) => {
    await p.rebuild()
    return c.json({ rebuilding: true }, 202)
  }))
  app.get(base, wrap(async (c) => c.json(await statusView(p))))

  const list = mounted.get(app)
  if (list) {
    list.push(p)
    return
  }
  const all = [p]
  mounted.set(app, all)
  app.get('/__onepipe/projections', wrap(async (c) => c.json({ projections: await Promise.all(all.map(statusView)) })))
}
