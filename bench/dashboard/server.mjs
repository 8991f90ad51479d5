// The app the dashboard bench measures: serve() with Auth and one 5-stage
// pipeline template on PostgreSQL (DATABASE_URL, its own schema), the
// control plane's worker API on a port of its own. Prints TOKEN=, KEY=,
// APP=, WORKERS= then PORT=.
import { Auth, Database, Pipeline } from '@onepipe/sdk'
import { ControlPlane } from '@onepipe/pipelines'
import { createLogger, serve } from '@onepipe/runtime'

const db = Database.create('bench').postgres(process.env.DATABASE_URL).schema(process.env.BENCH_SCHEMA).build()
const auth = Auth.create('bench').db(db).secret('bench-dashboard-secret-0123456789-abcdefghij').build()
const stages = ['fetch', 'parse', 'enrich', 'score', 'store']
let b = Pipeline.create('bench-five')
for (const [i, s] of stages.entries()) b = b.stage(s, { handler: `bench.${s}`, ...(i > 0 ? { dependsOn: [stages[i - 1]] } : {}) })
const tpl = b.build()
const cp = ControlPlane.create().port(0).templates([tpl]).build()
const app = await serve({ port: 0, hostname: '127.0.0.1', db, auth, pipelines: [tpl, cp], logger: createLogger({ level: 'warn' }), handleSignals: true })
const email = `bench-${Date.now()}@example.test`
await auth.users.create({ email, password: 'a bench passphrase', roles: ['admin'] })
const { accessToken } = await auth.login(email, 'a bench passphrase')
const application = await auth.applications.create({ name: 'bench' })
const { key } = await auth.apiKeys.create(application.id, { name: 'bench-worker' })
console.log(`EMAIL=${email}`)
console.log(`TOKEN=${accessToken}`)
console.log(`KEY=${key}`)
console.log(`APP=${application.id}`)
console.log(`WORKERS=${cp.url}`)
console.log(`PORT=${app.port}`)
