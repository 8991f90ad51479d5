import { existsSync } from 'node:fs'
import { relative } from 'node:path'
import { DEV_ADMIN_EMAIL, devAdminFile, OnePipeError } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { createDb } from './app.js'
import { createShop } from './shop.js'

const db = createDb()
let app: App
try {
  app = await serve({ ...createShop(db), version: '1.0.0' }) // PORT, else 3000
} catch (e) {
  // serve() has logged the failure; a person at a terminal reads the cause and what to do in one line.
  process.stderr.write(`\n  The shop could not start: ${e instanceof OnePipeError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e)}\n\n`)
  process.exit(1)
}

/** How to log in to the dashboard: the development admin on the embedded default, else the admin from the environment. */
function login(): string {
  const file = devAdminFile(db)
  if (file && existsSync(file)) return `(log in as ${DEV_ADMIN_EMAIL}; the password is in ${relative(process.cwd(), file) || file})`
  return process.env.ONEPIPE_ADMIN_EMAIL ? `(log in as ${process.env.ONEPIPE_ADMIN_EMAIL})` : '(log in with an account: set ONEPIPE_ADMIN_EMAIL and ONEPIPE_ADMIN_PASSWORD to make the first admin)'
}

if (app.url) {
  const where = db.kind === 'pglite' ? `embedded PGlite in ${db.options.dataDir ?? 'memory'}` : `PostgreSQL (DATABASE_URL${db.schema ? `, schema ${db.schema}` : ''})`
  process.stdout.write(
    [
      '',
      `  OnePipe shop is running on ${where}`,
      `  Orders API   ${app.url}/api/orders`,
      `  Order events ${app.url}/__onepipe/flows/order-events/stream   (live, SSE)`,
      `  Fulfilment   ${app.url}/__onepipe/workflows/fulfil-order/runs`,
      `  Order counts ${app.url}/api/orders/stats   (a projection of the events)`,
      `  Shop open    ${app.url}/__onepipe/signals/shop-open   (a signal; PUT false to close, /stream to watch)`,
      `  Payments     ${app.url}/rpc/charge-payment   (idempotent RPC)`,
      `  OpenAPI      ${app.url}/openapi.json`,
      `  Health       ${app.url}/health   Ready ${app.url}/ready   Metrics ${app.url}/metrics`,
      `  Dashboard    ${app.url}/__onepipe/dashboard/   ${login()}`,
      `  Log in       POST ${app.url}/__onepipe/auth/login  (ONEPIPE_ADMIN_EMAIL and ONEPIPE_ADMIN_PASSWORD at start make the first admin; see docs/auth.md)`,
      `  Try: curl -X POST ${app.url}/api/orders -H 'content-type: application/json' -d '{"customer":"ada","items":[{"sku":"tea","qty":2,"priceCents":450}]}'`,
      '',
    ].join('\n') + '\n',
  )
}
