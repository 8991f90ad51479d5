// OnePipe: the same three routes through REST and serve() (request ids,
// metrics, drain gate and error mapping all on, as in production), plus the
// GET JSON route again behind a JWT and behind a rate limit, to price each.
import { Auth, Database, RateLimit, REST } from '@onepipe/sdk'
import { serve } from '@onepipe/runtime'
import { createLogger } from '@onepipe/runtime'
import { Order } from './schema.mjs'

const logger = createLogger({ level: 'warn' })
const db = Database.create('bench').pglite('memory://').build()
const auth = Auth.create('bench').db(db).secret('bench-secret-bench-secret-bench-secret-0123456789').build()
const limit = RateLimit.create('bench').points(1_000_000_000).per('60s').by('ip').build()

const api = REST.create('bench')
  .get('/hello', () => ({ hello: 'world' }))
  .get('/users/:id', (ctx) => ({ id: ctx.params.id, name: 'user' }))
  .post('/orders', { body: Order }, async (ctx) => ctx.created({ ok: true, items: (await ctx.body()).items.length }))
  .get('/limited/hello', { rateLimit: limit }, () => ({ hello: 'world' }))
  .build()
const secured = REST.create('secured').basePath('/secure').auth(auth).get('/hello', () => ({ hello: 'world' })).build()

const app = await serve({ port: 0, hostname: '127.0.0.1', db, auth, rest: [api, secured], logger })
await auth.users.create({ email: 'bench@example.test', password: 'a bench passphrase', roles: ['viewer'] })
const { accessToken } = await auth.login('bench@example.test', 'a bench passphrase')
// The token first: the bench reads it once it sees the port.
console.log(`TOKEN=${accessToken}`)
console.log(`PORT=${app.port}`)
