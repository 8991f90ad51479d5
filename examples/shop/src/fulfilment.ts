import { Channel, Cron, Flow, Workflow, type Database } from '@onepipe/sdk'
import { z } from 'zod'

/** What happens to orders, in order: placed, paid, shipped. Other services read it live. */
export type OrderEvent = { type: 'order.placed' | 'order.paid' | 'order.shipped'; orderId: number; at: string }

const OrderEventSchema = z.object({ type: z.enum(['order.placed', 'order.paid', 'order.shipped']), orderId: z.number().int().positive(), at: z.string() })

/** The shop's event log (in PostgreSQL/PGlite; readable at /__onepipe/flows/order-events/stream). */
export function createOrderEvents(db: Database) {
  return Flow.create('order-events').schema(OrderEventSchema).db(db).build()
}

/**
 * Charges a card, once per order whatever the retries: the idempotency key is
 * the order id. The payment provider here is deterministic and local; a real
 * app calls its provider in the handler with the same key.
 */
export function createChargePayment(db: Database) {
  return Channel.create('charge-payment')
    .input(z.object({ orderId: z.number().int().positive(), amountCents: z.number().int().nonnegative() }))
    .output(z.object({ chargeId: z.string(), amountCents: z.number() }))
    .db(db)
    .idempotency((input) => `order-${input.orderId}`, { ttl: '7d' })
    .retry({ attempts: 3, backoff: 'exponential', delay: '200ms' })
    .timeout('10s')
    .handler(async (input) => ({ chargeId: `ch_${input.orderId}_${input.amountCents}`, amountCents: input.amountCents }))
    .build()
}

/** Pay, wait for the warehouse, ship: survives restarts at every step. */
export function createFulfilOrder(db: Database, events: ReturnType<typeof createOrderEvents>, charge: ReturnType<typeof createChargePayment>) {
  return Workflow.create('fulfil-order')
    .input(z.object({ orderId: z.number().int().positive() }))
    .db(db)
    .timeout('1h')
    .define(async (ctx, { orderId }) => {
      const order = await ctx.step('load', async () => {
        const [row] = await ctx.db.query<{ total_cents: number; status: string }>('SELECT total_cents, status FROM orders WHERE id = $1', [orderId])
        return row ?? null
      })
      if (!order || order.status === 'cancelled') return { orderId, outcome: 'skipped' }
      const payment = await ctx.step('charge', () => charge.call({ orderId, amountCents: order.total_cents }))
      await ctx.step('mark-paid', () => ctx.db.execute("UPDATE orders SET status = 'paid', updated_at = now() WHERE id = $1 AND status = 'pending'", [orderId]))
      await ctx.emit(events, { type: 'order.paid', orderId, at: new Date().toISOString() })
      await ctx.sleep('2s') // the warehouse picks the parcel
      await ctx.step('ship', () => ctx.db.execute("UPDATE orders SET status = 'shipped', updated_at = now() WHERE id = $1 AND status = 'paid'", [orderId]))
      await ctx.emit(events, { type: 'order.shipped', orderId, at: new Date().toISOString() })
      return { orderId, outcome: 'shipped', chargeId: payment.chargeId }
    })
    .build()
}

/** Every morning at 9 (Paris time), once across all instances: count yesterday's orders. */
export function createDailyReport(db: Database) {
  return Cron.create('daily-report')
    .schedule('0 9 * * *')
    .timezone('Europe/Paris')
    .db(db)
    .handler(async (ctx) => {
      const [row] = await ctx.db.query<{ n: number }>("SELECT count(*)::int8 AS n FROM orders WHERE created_at >= $1::timestamptz - interval '1 day'", [ctx.scheduledTime])
      return { orders: row?.n ?? 0 }
    })
    .build()
}
