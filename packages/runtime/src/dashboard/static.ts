import { serveStatic } from '@hono/node-server/serve-static'
import { errorResponse, requestIdOf } from '@onepipe/sdk'
import type { Context, Hono } from 'hono'
import { compress } from 'hono/compress'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

/** Where the dashboard is served; the app's build uses the same base (packages/dashboard/vite.config.ts). */
export const DASHBOARD_BASE = '/__onepipe/dashboard'

/**
 * The built dashboard: `ONEPIPE_DASHBOARD_DIR` when set, else the `dist`
 * of the installed `@onepipe/dashboard`; undefined when neither exists
 * (the package was not built).
 */
export function dashboardDir(): string | undefined {
  const fromEnv = process.env.ONEPIPE_DASHBOARD_DIR
  if (fromEnv) return existsSync(join(fromEnv, 'index.html')) ? fromEnv : undefined
  try {
    const dir = join(dirname(createRequire(import.meta.url).resolve('@onepipe/dashboard/package.json')), 'dist')
    return existsSync(join(dir, 'index.html')) ? dir : undefined
  } catch {
    return undefined
  }
}

// Scripts, styles and data only from this origin: the dashboard loads nothing from anywhere else.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

/**
 * Serves the dashboard's static files under {@link DASHBOARD_BASE}: hashed
 * assets cached for a year (`immutable`), `index.html` never cached and
 * answered for every other path (the app routes in the browser), all with
 * a same-origin Content-Security-Policy. Without a build, a JSON 404 says
 * how to make one.
 */
export function mountDashboardFiles(app: Hono, dir: string | undefined): void {
  if (!dir) {
    app.get(`${DASHBOARD_BASE}/*`, (c) => errorResponse(404, 'DASHBOARD_NOT_BUILT', 'The dashboard is not built: run `npm run build` (or set ONEPIPE_DASHBOARD_DIR to a build)', requestIdOf(c)))
    return
  }
  const index = readFileSync(join(dir, 'index.html'), 'utf8')
  const page = (c: Context) => {
    c.header('cache-control', 'no-cache')
    c.header('content-security-policy', CSP)
    return c.html(index)
  }
  app.get(DASHBOARD_BASE, (c) => c.redirect(`${DASHBOARD_BASE}/`, 301))
  app.use(`${DASHBOARD_BASE}/assets/*`, compress())
  app.get(
    `${DASHBOARD_BASE}/assets/*`,
    serveStatic({
      root: dir,
      rewriteRequestPath: (p) => p.slice(DASHBOARD_BASE.length),
      onFound: (_path, c) => {
        c.header('cache-control', 'public, max-age=31536000, immutable')
      },
    }),
  )
  // A missing asset is a 404, not the page: a stale tab asking for an old hash must see it fail.
  app.get(`${DASHBOARD_BASE}/assets/*`, (c) => errorResponse(404, 'NOT_FOUND', `No dashboard asset ${c.req.path}`, requestIdOf(c)))
  // Other files of the build (an icon, robots.txt): revalidated every time, like the page.
  app.get(
    `${DASHBOARD_BASE}/*`,
    serveStatic({
      root: dir,
      rewriteRequestPath: (p) => p.slice(DASHBOARD_BASE.length),
      onFound: (_path, c) => {
        c.header('cache-control', 'no-cache')
        c.header('content-security-policy', CSP)
      },
    }),
  )
  // A path that names a file (favicon.ico, robots.txt) and is not in the build is a 404; only app routes get the page.
  app.get(`${DASHBOARD_BASE}/*`, (c) => (/\.[A-Za-z0-9]{1,8}$/.test(c.req.path) ? errorResponse(404, 'NOT_FOUND', `No dashboard file ${c.req.path}`, requestIdOf(c)) : page(c)))
}
