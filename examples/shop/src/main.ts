import { serve } from '@onepipe/runtime'
import { createDb } from './app.js'
import { createShop } from './shop.js'

const db = createDb()
const app = await serve({ port: Number(process.env.PORT ?? 3000), ...createShop(db) })

if (app.url) {
  const where = db.kind === 'pglite' ? `embedded PGlite in ${db.options.dataDir ?? 'memory'}` : 'PostgreSQL (DATABASE_URL)'
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
      `  Try: curl -X POST ${app.url}/api/orders -H 'content-type: application/json' -d '{"customer":"ada","items":[{"sku":"tea","qty":2,"priceCents":450}]}'`,
      '',
    ].join('\n') + '\n',
  )
}
