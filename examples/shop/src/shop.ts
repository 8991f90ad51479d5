import type { Database } from '@onepipe/sdk'
import { createLifecycle, createOrdersApi } from './app.js'
import { createChargePayment, createDailyReport, createFulfilOrder, createOrderEvents } from './fulfilment.js'

/**
 * Every primitive of the shop, wired together, as `serve()` options: the
 * entry point and the tests serve exactly the same app.
 */
export function createShop(db: Database) {
  const events = createOrderEvents(db)
  const charge = createChargePayment(db)
  const fulfil = createFulfilOrder(db, events, charge)
  return {
    db,
    rest: [createOrdersApi(db, { events, fulfil })],
    flows: [events],
    channels: [charge],
    workflows: [fulfil],
    cron: [createDailyReport(db)],
    lifecycle: createLifecycle(db),
    openapi: { title: 'Shop', version: '1.0.0' },
  }
}
