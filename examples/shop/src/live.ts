import { Projection, Signal, type Database } from '@onepipe/sdk'
import { z } from 'zod'
import type { createOrderEvents } from './fulfilment.js'

/** How many orders were placed, paid and shipped: the order-events flow folded once, exactly. */
export type OrderCounts = { placed: number; paid: number; shipped: number }

/**
 * Order counts, kept up to date from the order-events flow on every instance
 * (each event is applied once, whatever restarts). Read at GET /api/stats.
 */
export function createOrderCounts(db: Database, events: ReturnType<typeof createOrderEvents>) {
  return Projection.create('order-counts')
    .from(events)
    .initial<OrderCounts>({ placed: 0, paid: 0, shipped: 0 })
    .reduce((s, e) => {
      const k = e.type === 'order.placed' ? 'placed' : e.type === 'order.paid' ? 'paid' : 'shipped'
      return { ...s, [k]: s[k] + 1 }
    })
    .db(db)
    .build()
}

/**
 * Whether the shop takes orders, switched live by an operator
 * (`PUT /__onepipe/signals/shop-open` with `false`) and watched by every
 * instance and any client (`GET /__onepipe/signals/shop-open/stream`).
 */
export function createShopOpen(db: Database) {
  return Signal.create('shop-open').schema(z.boolean()).default(true).db(db).build()
}
