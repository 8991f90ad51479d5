// Cron.pause()/resume(): a paused job claims no scheduled tick on any
// instance, still runs when triggered, and on resume does not catch up the
// ticks that fell while it was paused.
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

it('pauses on every instance, runs when triggered while paused, and resumes without catching up', async () => {
  const name = uniqueName('pause')
  const make = () => Cron.create(name).schedule('* * * * * *').catchUp(true).lease({ ttlMs: 5_000, renewMs: 500 }).handler(() => 'tick').build()
  const a = make()
  const b = make()
  await a.attach(rt('pause-a'))
  await b.attach(rt('pause-b'))
  try {
    const scheduled = async () => (await a.history({ limit: 1000 })).filter((e) => e.kind !== 'manual')
    await waitFor(async () => (await scheduled()).length >= 2, { timeoutMs: 30_000, what: 'two scheduled ticks' })
    await b.pause() // on the instance that may not hold the lease: the holder stops too
    expect((await a.info()).pausedAt).toBeInstanceOf(Date)
    // A tick already claimed when the pause landed may still finish; after that, nothing new.
    await sleep(1_500)
    const atPause = (await scheduled()).length
    await sleep(3_000)
    expect((await scheduled()).length).toBe(atPause)
    const manual = await a.trigger({ timeoutMs: 30_000 })
    expect(manual).toMatchObject({ kind: 'manual', status: 'completed', output: 'tick' })
    const resumedAt = Date.now()
    await a.resume()
    expect((await b.info()).pausedAt).toBeNull()
    await waitFor(async () => (await scheduled()).length > atPause, { timeoutMs: 30_000, what: 'ticks again after resume' })
    // No catch-up of the ~4 s paused: every new tick is at or after the resume (1 s of clock slack).
    const after = (await scheduled()).slice(0, (await scheduled()).length - atPause)
    for (const e of after) expect(e.scheduledTime.getTime()).toBeGreaterThanOrEqual(resumedAt - 1_000)
    // Pausing twice, resuming twice: idempotent.
    await a.pause()
    await a.pause()
    await a.resume()
    await a.resume()
    expect((await a.info()).pausedAt).toBeNull()
  } finally {
    await a.detach()
    await b.detach()
  }
})
