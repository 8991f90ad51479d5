// The peer: bare Hono on @hono/node-server with the same three routes.
import { Hono } from 'hono'
import { serve } from '@hono/node-server'
import { Order } from './schema.mjs'

const app = new Hono()
app.get('/hello', (c) => c.json({ hello: 'world' }))
app.get('/users/:id', (c) => c.json({ id: c.req.param('id'), name: 'user' }))
app.post('/orders', async (c) => {
  let body
  try {
    body = await c.req.json()
  } catch {
    return c.json({ error: { code: 'INVALID_JSON' } }, 400)
  }
  const r = Order.safeParse(body)
  if (!r.success) return c.json({ error: { code: 'VALIDATION_FAILED' } }, 400)
  return c.json({ ok: true, items: r.data.items.length }, 201)
})
const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => console.log(`PORT=${info.port}`))
process.once('SIGTERM', () => server.close(() => process.exit(0)))
