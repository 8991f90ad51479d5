#!/usr/bin/env node
/**
 * `onepipe-streams serve --port 9999 --store file --dir .onepipe/streams`
 *
 * Runs the Unbroken streams server standalone. Stores are picked by name
 * from the registry (`createStore`); flags fall back to ONEPIPE_STREAMS_PORT,
 * REDIS_URL and DATABASE_URL.
 */
import { parseArgs } from 'node:util'
import { createStore, storeKinds } from './stores/index.js'
import { UnbrokenServer } from './server/index.js'

const USAGE = `Usage: onepipe-streams serve [options]

  --port <n>                 TCP port (default ONEPIPE_STREAMS_PORT or 9999; 0 = any free port)
  --host <addr>              interface to bind (default 127.0.0.1)
  --store <kind>             ${storeKinds().join(' | ')} (default memory)
  --dir <path>               file store directory (default .onepipe/streams)
  --redis-url <url>          Redis store URL (default REDIS_URL)
  --database-url <url>       PostgreSQL store URL (default DATABASE_URL)
  --long-poll-timeout-ms <n> how long live=long-poll waits (default 20000)
  --sse-lifetime-ms <n>      how long one SSE connection stays open (default 60000)
  --max-body-bytes <n>       largest accepted body, else 413 (default 4194304)
`

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`--${name} must be a non-negative integer, got "${v}"\n${USAGE}`)
    process.exit(2)
  }
  return n
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      store: { type: 'string', default: 'memory' },
      dir: { type: 'string', default: '.onepipe/streams' },
      'redis-url': { type: 'string' },
      'database-url': { type: 'string' },
      'long-poll-timeout-ms': { type: 'string' },
      'sse-lifetime-ms': { type: 'string' },
      'max-body-bytes': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help || positionals[0] !== 'serve') {
    process.stdout.write(USAGE)
    process.exit(values.help ? 0 : 2)
  }
  const store = await createStore(values.store, {
    dir: values.dir,
    ...(values['redis-url'] ?? process.env.REDIS_URL ? { redisUrl: values['redis-url'] ?? process.env.REDIS_URL } : {}),
    ...(values['database-url'] ?? process.env.DATABASE_URL ? { databaseUrl: values['database-url'] ?? process.env.DATABASE_URL } : {}),
  })
  const longPollTimeoutMs = num('long-poll-timeout-ms', values['long-poll-timeout-ms'])
  const sseLifetimeMs = num('sse-lifetime-ms', values['sse-lifetime-ms'])
  const maxBodyBytes = num('max-body-bytes', values['max-body-bytes'])
  const server = new UnbrokenServer({
    store,
    port: num('port', values.port ?? process.env.ONEPIPE_STREAMS_PORT) ?? 9999,
    ...(values.host ? { host: values.host } : {}),
    ...(longPollTimeoutMs !== undefined ? { longPollTimeoutMs } : {}),
    ...(sseLifetimeMs !== undefined ? { sseLifetimeMs } : {}),
    ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
  })
  const { url } = await server.start()
  process.stdout.write(`onepipe streams listening on ${url} (store: ${store.kind})\n`)
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    process.stdout.write(`onepipe streams stopping (${signal})\n`)
    server.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err)
  process.exit(1)
})
