// Cron.info(): the job's schedule, next tick and lease holder, read from the
// database by any instance (the holder itself or not).
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Cron, silentLogger, type Database, type RuntimeContext } from '@onepipe/sdk'
import { testDatabase, uniqueName, waitFor } from '@onepipe/testing'

let db: Database
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterAll(async () => {
  await cleanup()
})

const rt = (id: string): RuntimeContext => ({ instanceId: id, db, cache: undefined as never, logger: silentLogger, signal: new AbortController().signal })

it('info() names the lease holder, its fencing token and expiry; after a clean stop the lease reads as not live', async () => {
  const name = uniqueName('info')
  const make = () => Cron.create(name).schedule('0 9 * * 1-5').timezone('Europe/Paris').lease({ ttlMs: 10_000, renewMs: 1_000 }).handler(() => 'ok').build()
  const observer = make()
  await observer.attach(rt('observer'))
  await observer.detach() // registers the job and takes (then gives back) the lease once
  const a = make()
  await a.attach(rt('holder-a'))
  const held = await waitFor(async () => {
    const i = await observer.info()
    return i.lease?.holder === 'holder-a' && i.lease.live && i
  }, { what: 'holder-a to hold the lease' })
  expect(held).toMatchObject({ jobName: name, schedule: '0 9 * * 1-5', timezone: 'Europe/Paris', instanceId: 'observer' })
  expect(held.lease!.fencingToken).toBeGreaterThanOrEqual(2)
  expect(held.lease!.expiresAt.getTime()).toBeGreaterThan(held.lease!.acquiredAt.getTime())
  expect(held.nextRun).toBeInstanceOf(Date)
  expect((await a.info()).instanceId).toBe('holder-a')
  // A manual run is claimed by the holder: history shows the same instance id as info().
  const run = await observer.trigger()
  expect(run).toMatchObject({ status: 'completed', instanceId: 'holder-a', fencingToken: held.lease!.fencingToken })
  await a.detach()
  expect((await observer.info()).lease).toMatchObject({ holder: 'holder-a', live: false })
})

it('info() of a job nobody ever held answers lease null', async () => {
  const job = Cron.create(uniqueName('never')).schedule('@daily').db(db).handler(() => undefined).build()
  expect(await job.info()).toMatchObject({ lease: null, timezone: undefined, schedule: '@daily' })
})
