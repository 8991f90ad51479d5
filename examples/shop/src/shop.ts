import type { Database } from '@onepipe/sdk'
import { createLifecycle, createOrdersApi } from './app.js'
import { createChargePayment, createDailyReport, createFulfilOrder, createOrderEvents } from './fulfilment.js'
import { createOrderCounts, createShopOpen } from './live.js'

/**
 * Every primitive of the shop, wired together, as `serve()` options: the
 * entry point and the tests serve exactly the same app.
 */
export function createShop(db: Database) {
  const events = createOrderEvents(db)
  const charge = createChargePayment(db)
  const fulfil = createFulfilOrder(db, events, charge)
  const counts = createOrderCounts(db, events)
  const open = createShopOpen(db)
  return {
    db,
    rest: [createOrdersApi(db, { events, fulfil, counts, open })],
    flows: [events],
    projections: [counts],
    signals: [open],
    channels: [charge],
    workflows: [fulfil],
    cron: [createDailyReport(db)],
    lifecycle: createLifecycle(db),
    openapi: { title: 'Shop', version: '1.0.0' },
    // What anyone may read without logging in; everything else of /__onepipe and /rpc needs an
    // account (ONEPIPE_ADMIN_EMAIL + ONEPIPE_ADMIN_PASSWORD make the first one; see docs/auth.md).
    public: ['GET /__onepipe/flows/order-events/*', 'GET /__onepipe/signals/shop-open', 'GET /__onepipe/signals/shop-open/*', 'GET /__onepipe/workflows/*'],
  }
}
