// Prepares one system's tables in the run's database, in a process of its
// own (its commits are flushed when it exits, before the measured window).
// Usage: setup.mjs <onepipe|pgboss|graphile> (env DATABASE_URL, SCHEMA,
// QUEUE, AUTH_SECRET); prints one JSON line.
const system = process.argv[2]
const URL_ = process.env.DATABASE_URL
let out = {}
if (system === 'onepipe') {
  const { Auth, Database } = await import('@onepipe/sdk')
  const db = Database.create('bench-setup').postgres(URL_).schema(process.env.SCHEMA).pool({ max: 2 }).build()
  const auth = Auth.create('bench').db(db).secret(process.env.AUTH_SECRET).build()
  await db.ready()
  await auth.ready()
  const app = await auth.applications.create({ name: 'bench' })
  const key = await auth.apiKeys.create(app.id, { name: 'bench' })
  out = { appId: app.id, key: key.key }
  await auth.close()
  await db.close()
} else if (system === 'pgboss') {
  const { default: PgBoss } = await import('pg-boss')
  const boss = new PgBoss({ connectionString: URL_, schema: 'pgboss', supervise: false, schedule: false })
  await boss.start()
  await boss.createQueue(process.env.QUEUE)
  await boss.stop({ graceful: false, wait: true })
} else if (system === 'graphile') {
  const { runMigrations } = await import('graphile-worker')
  await runMigrations({ connectionString: URL_, logger: undefined })
}
process.stdout.write(JSON.stringify(out) + '\n')
process.exit(0)
