import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Database } from '@onepipe/core'
import { postgresUrl, requireService, testBackend, uniqueName, type NodeProcess } from '@onepipe/testing'
import { exerciseExample, readmeExample, scratch, startExample } from './readme.js'

// The README's example is what a newcomer runs first: it is taken out of
// README.md itself and run as it stands.
describe("the README's example runs verbatim", () => {
  const dirs: string[] = []
  const procs: NodeProcess[] = []
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it('is at most ten lines of code', () => {
    expect(readmeExample().split('\n').filter((l) => l.trim() !== '').length).toBeLessThanOrEqual(10)
  })

  it('on the embedded default: POST then GET succeed, bad input is a 4xx, and the data is there after a restart', async () => {
    const dir = scratch('readme')
    dirs.push(dir)
    const env = { PORT: '0', DATABASE_URL: undefined, REDIS_URL: undefined, ONEPIPE_DB_SCHEMA: undefined, ONEPIPE_DATA_DIR: join(dir, '.onepipe') }
    const first = await startExample(dir, env)
    procs.push(first.p)
    const row = await exerciseExample(first.url)
    first.p.kill('SIGTERM')
    expect(await first.p.exited).toBe(0)

    const again = await startExample(dir, env)
    procs.push(again.p)
    expect(await (await fetch(`${again.url}/api/orders/${row.id}`)).json()).toEqual(row)
    again.p.kill('SIGTERM')
    expect(await again.p.exited).toBe(0)
  })

  it.runIf(testBackend() === 'real')('on PostgreSQL: POST then GET succeed, and bad input is a 4xx', async () => {
    await requireService('postgres')
    const dir = scratch('readme-pg')
    dirs.push(dir)
    const schema = uniqueName('readme')
    try {
      const app = await startExample(dir, { PORT: '0', DATABASE_URL: postgresUrl(), ONEPIPE_DB_SCHEMA: schema })
      procs.push(app.p)
      await exerciseExample(app.url)
      app.p.kill('SIGTERM')
      expect(await app.p.exited).toBe(0)
    } finally {
      const admin = Database.create('admin').postgres(postgresUrl()).autoMigrate(false).build()
      await admin.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await admin.close()
    }
  })
})
