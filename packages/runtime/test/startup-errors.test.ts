import { createServer } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { Cache, ConfigError, Cron, Database, silentLogger, type Logger } from '@onepipe/sdk'
import { serve } from '@onepipe/runtime'
import { testDatabase } from '@onepipe/testing'

// A misconfiguration at start-up is one clear error with a code that names
// what to change, logged before it is thrown, and leaves nothing running.
describe('start-up errors', () => {
  const saved = { PORT: process.env.PORT, DATABASE_URL: process.env.DATABASE_URL, REDIS_URL: process.env.REDIS_URL }
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  })

  it('a PORT that is not a port is INVALID_PORT naming PORT', async () => {
    for (const bad of ['abc', '99999', '-1', '3.5']) {
      process.env.PORT = bad
      await expect(serve({ handleSignals: false, logger: silentLogger })).rejects.toMatchObject({ code: 'INVALID_PORT', message: expect.stringContaining(`PORT is "${bad}"`) as string })
    }
  })

  it('a port in use is PORT_IN_USE, logged, and the engines it attached hand back their leases', async () => {
    const { db, cleanup } = await testDatabase()
    const taken = createServer()
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r))
    const port = (taken.address() as { port: number }).port
    const lines: string[] = []
    const logger: Logger = { debug() {}, info() {}, warn() {}, error: (_o, m) => void lines.push(String(m)), child: () => logger }
    const job = Cron.create('startup-lease').schedule('0 0 1 1 *').db(db).handler(() => undefined).build()
    try {
      await expect(serve({ port, hostname: '127.0.0.1', db, cron: [job], handleSignals: false, logger })).rejects.toMatchObject({ code: 'PORT_IN_USE' })
      expect(lines.some((l) => l.startsWith('OnePipe app failed to start: Port'))).toBe(true)
      const held = await db.query<{ n: number }>("SELECT count(*)::int8 AS n FROM _onepipe_cron_locks WHERE job_name = 'startup-lease' AND expires_at > now()")
      expect(held[0]?.n).toBe(0)
    } finally {
      await new Promise((r) => taken.close(r))
      await cleanup()
    }
  })

  it('DATABASE_URL and REDIS_URL that are not URLs of their kind are ConfigErrors naming the variable', () => {
    process.env.DATABASE_URL = 'not-a-url'
    expect(() => Database.create('x')).toThrow(ConfigError)
    expect(() => Database.create('x')).toThrow(/DATABASE_URL "not-a-url" is not a postgres:\/\/ URL/)
    delete process.env.DATABASE_URL
    process.env.REDIS_URL = 'bogus'
    expect(() => Cache.fromEnv()).toThrow(/REDIS_URL "bogus" is not a redis:\/\/ or rediss:\/\/ URL/)
  })
})
