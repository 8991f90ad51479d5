import { z } from 'zod'

export const Order = z.object({
  customer: z.string().min(1),
  items: z.array(z.object({ sku: z.string(), qty: z.number().int().positive(), priceCents: z.number().int().nonnegative() })).min(1),
})

export const orderBody = JSON.stringify({ customer: 'ada', items: [{ sku: 'tea', qty: 2, priceCents: 450 }, { sku: 'cake', qty: 1, priceCents: 300 }] })
