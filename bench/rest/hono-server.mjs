// The peer: Hono on @hono/node-server with the same three routes. Every
// answer carries the security headers OnePipe sends on every response (the
// set Hono's own secureHeaders middleware makes, given here as static headers,
// the cheapest way), so both servers write the same bytes and the ratio is
// what OnePipe adds, not what the headers cost.
import { Hono } from 'hono'
import { serve } from '@hono/node-server'
import { secureHeaders } from 'hono/secure-headers'
import { Order } from './schema.mjs'

const probe = new Hono().use('*', secureHeaders({ crossOriginEmbedderPolicy: false, crossOriginResourcePolicy: false })).get('/', (c) => c.body(null, 204))
const SECURE = Object.fromEntries([...(await probe.request('/')).headers.entries()].filter(([k]) => k !== 'content-type'))

const app = new Hono()
app.get('/hello', (c) => c.json({ hello: 'world' }, 200, SECURE))
app.get('/users/:id', (c) => c.json({ id: c.req.param('id'), name: 'user' }, 200, SECURE))
app.post('/orders', async (c) => {
  let body
  try {
    body = await c.req.json()
  } catch {
    return c.json({ error: { code: 'INVALID_JSON' } }, 400, SECURE)
  }
  const r = Order.safeParse(body)
  if (!r.success) return c.json({ error: { code: 'VALIDATION_FAILED' } }, 400, SECURE)
  return c.json({ ok: true, items: r.data.items.length }, 201, SECURE)
})
const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => console.log(`PORT=${info.port}`))
process.once('SIGTERM', () => server.close(() => process.exit(0)))
