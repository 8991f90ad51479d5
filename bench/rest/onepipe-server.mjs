// OnePipe: the same three routes through REST and serve() (request ids,
// metrics, drain gate and error mapping all on, as in production).
import { REST } from '@onepipe/sdk'
import { serve } from '@onepipe/runtime'
import { createLogger } from '@onepipe/runtime'
import { Order } from './schema.mjs'

const api = REST.create('bench')
  .get('/hello', () => ({ hello: 'world' }))
  .get('/users/:id', (ctx) => ({ id: ctx.params.id, name: 'user' }))
  .post('/orders', { body: Order }, async (ctx) => ctx.created({ ok: true, items: (await ctx.body()).items.length }))
  .build()
await serve({ port: 0, hostname: '127.0.0.1', rest: [api], logger: createLogger({ level: 'warn' }), onListen: ({ port }) => console.log(`PORT=${port}`) })
