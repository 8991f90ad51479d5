import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, Cron, CronSchedule, silentLogger, type Database, type RuntimeContext } from '@onepipe/sdk'
import { testDatabase } from '@onepipe/testing'
import { acquireLock, claimTick, releaseLock, renewLock, upsertJob } from '../../src/cron/sql.js'
import { until } from '../flow/until.js'

let db: Database
let cleanup: () => Promise<void>
const running: Cron[] = []
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterAll(async () => {
  for (const c of running) await c.stop()
  await cleanup()
})

const iso = (ds: Date[]) => ds.map((d) => d.toISOString())
// Renewed every second, but a TTL no loaded machine outlives by accident: these tests never want a failover.
const fast = { ttlMs: 10_000, renewMs: 1_000 }
let n = 0
const jobName = (p: string) => `${p}-${++n}`
const track = (c: Cron) => (running.push(c), c)

describe('cron expressions', () => {
  it('reads 5 and 6 fields, names, ranges, steps, L and nicknames', () => {
    const from = new Date('2025-01-01T00:00:00Z')
    expect(iso(new CronSchedule('*/15 * * * * *', undefined).nextN(2, from))).toEqual(['2025-01-01T00:00:15.000Z', '2025-01-01T00:00:30.000Z'])
    expect(iso(new CronSchedule('0 12 * JAN,FEB MON', undefined).nextN(2, from))).toEqual(['2025-01-06T12:00:00.000Z', '2025-01-13T12:00:00.000Z'])
    expect(iso(new CronSchedule('0 9-10 * * 1-5', undefined).nextN(3, from))).toEqual(['2025-01-01T09:00:00.000Z', '2025-01-01T10:00:00.000Z', '2025-01-02T09:00:00.000Z'])
    expect(iso(new CronSchedule('0 0 L * *', undefined).nextN(2, from))).toEqual(['2025-01-31T00:00:00.000Z', '2025-02-28T00:00:00.000Z'])
    expect(iso(new CronSchedule('@daily', undefined).nextN(1, from))).toEqual(['2025-01-02T00:00:00.000Z'])
    expect(iso(new CronSchedule('@hourly', undefined).nextN(1, from))).toEqual(['2025-01-01T01:00:00.000Z'])
    expect(iso(new CronSchedule('@weekly', undefined).nextN(1, from))).toEqual(['2025-01-05T00:00:00.000Z'])
  })

  it('finds the ticks due in a window, the one at its start second included, at most max (the newest)', () => {
    const s = new CronSchedule('* * * * * *', undefined)
    const at = (x: string) => new Date(`2025-01-01T00:00:${x}Z`)
    expect(iso(s.due(at('27.000'), at('30.004'), 10).ticks)).toEqual(['2025-01-01T00:00:28.000Z', '2025-01-01T00:00:29.000Z', '2025-01-01T00:00:30.000Z'])
    expect(s.due(at('27.000'), at('30.000'), 2)).toEqual({ ticks: [at('29.000'), at('30.000')], dropped: true })
    expect(s.due(at('30.000'), at('30.999'), 5)).toEqual({ ticks: [], dropped: false })
  })

  it('matches day-of-month OR day-of-week when both are restricted, as cron defines it', () => {
    // The 13th, and every Friday (Jan 2025: Fridays 3, 10, 17; the 13th is a Monday).
    expect(iso(new CronSchedule('0 0 13 * FRI', undefined).nextN(4, new Date('2025-01-01T00:00:00Z')))).toEqual([
      '2025-01-03T00:00:00.000Z',
      '2025-01-10T00:00:00.000Z',
      '2025-01-13T00:00:00.000Z',
      '2025-01-17T00:00:00.000Z',
    ])
  })

  it('keeps local wall-clock time across DST changes in its timezone', () => {
    // Europe/Paris springs forward on 2025-03-30 (UTC+1 → UTC+2): 09:00 local moves from 08:00Z to 07:00Z.
    expect(iso(new CronSchedule('0 9 * * *', 'Europe/Paris').nextN(3, new Date('2025-03-29T00:00:00Z')))).toEqual([
      '2025-03-29T08:00:00.000Z',
      '2025-03-30T07:00:00.000Z',
      '2025-03-31T07:00:00.000Z',
    ])
    // 02:30 does not exist on 2025-03-30: that day it runs an hour later (03:30 CEST), once.
    expect(iso(new CronSchedule('30 2 * * *', 'Europe/Paris').nextN(3, new Date('2025-03-29T00:00:00Z')))).toEqual([
      '2025-03-29T01:30:00.000Z',
      '2025-03-30T01:30:00.000Z',
      '2025-03-31T00:30:00.000Z',
    ])
    // 02:30 happens twice on 2025-10-26 (fall back): it runs once, at the first one.
    expect(iso(new CronSchedule('30 2 * * *', 'Europe/Paris').nextN(3, new Date('2025-10-25T00:00:00Z')))).toEqual([
      '2025-10-25T00:30:00.000Z',
      '2025-10-26T00:30:00.000Z',
      '2025-10-27T01:30:00.000Z',
    ])
    // Catch-up enumerates the same instants backwards across the change.
    expect(iso(new CronSchedule('30 2 * * *', 'Europe/Paris').due(new Date('2025-03-29T00:00:00Z'), new Date('2025-04-01T00:00:00Z'), 10).ticks)).toEqual([
      '2025-03-29T01:30:00.000Z',
      '2025-03-30T01:30:00.000Z',
      '2025-03-31T00:30:00.000Z',
    ])
    // New York, 2025-03-09: weekdays at 09:00 local, 14:00Z before the change and 13:00Z after.
    expect(iso(new CronSchedule('0 9 * * 1-5', 'America/New_York').nextN(2, new Date('2025-03-07T00:00:00Z')))).toEqual(['2025-03-07T14:00:00.000Z', '2025-03-10T13:00:00.000Z'])
  })

  it('rejects bad expressions and timezones at build time with a ConfigError', () => {
    const b = () => Cron.create('x').handler(() => {})
    expect(() => b().schedule('61 * * * *').build()).toThrow(ConfigError)
    expect(() => b().schedule('* * * *').build()).toThrow(/5 or 6 fields/)
    expect(() => b().schedule('* * * * *').timezone('Mars/Base').build()).toThrow(/timezone "Mars\/Base"/)
    expect(() => Cron.create('x').schedule('* * * * *').build()).toThrow(/nothing to run/)
    expect(() => Cron.create('bad name!')).toThrow(ConfigError)
  })
})

describe('cron scheduling', () => {
  it('runs each tick exactly once across three instances, with the context filled from the database clock', async () => {
    const seen: { instance: number; scheduled: number; actual: number; id: string }[] = []
    const name = jobName('every-second')
    const jobs = [0, 1, 2].map((i) =>
      track(
        Cron.create(name)
          .schedule('* * * * * *')
          .catchUp(true)
          .db(db)
          .lease(fast)
          .handler((ctx) => {
            seen.push({ instance: i, scheduled: ctx.scheduledTime.getTime(), actual: ctx.actualTime.getTime(), id: ctx.executionId })
            return { tick: ctx.scheduledTime.toISOString() }
          })
          .build(),
      ),
    )
    await Promise.all(jobs.map((j) => j.start()))
    await until(() => seen.length >= 4)
    await Promise.all(jobs.map((j) => j.stop()))
    const ticks = seen.map((s) => s.scheduled)
    expect(new Set(ticks).size).toBe(ticks.length)
    for (const s of seen) {
      expect(s.scheduled % 1000).toBe(0)
      expect(s.actual).toBeGreaterThanOrEqual(s.scheduled)
    }
    const hist = await jobs[0]!.history({ limit: 100 })
    expect(hist.map((h) => h.executionId).sort()).toEqual(seen.map((s) => s.id).sort())
    expect(hist.every((h) => h.status === 'completed' && h.jobName === name)).toBe(true)
    expect(hist[0]!.output).toEqual({ tick: hist[0]!.scheduledTime.toISOString() })
    // Consecutive ticks: nothing skipped while a holder was up.
    const sorted = [...ticks].sort((a, b) => a - b)
    expect(sorted.at(-1)! - sorted[0]!).toBe((sorted.length - 1) * 1000)
    expect(await jobs[0]!.history({ limit: 2, since: new Date(sorted.at(-1)!) })).toHaveLength(1)
  })

  it('after 10 minutes down, catch-up with maxCatchUp(3) runs exactly the 3 most recent missed ticks', async () => {
    const name = jobName('catch-up')
    const ran: { at: string; kind: string }[] = []
    const job = track(Cron.create(name).schedule('* * * * *').catchUp(true).maxCatchUp(3).db(db).handler((ctx) => void ran.push({ at: ctx.scheduledTime.toISOString(), kind: ctx.kind })).build())
    // Downtime is simulated by the record: the last executed tick was 10 minutes ago.
    await upsertJob(db, name, '* * * * *', undefined)
    await db.execute(`UPDATE _onepipe_cron_jobs SET created_at = now() - interval '1 hour' WHERE job_name = $1`, [name])
    await db.execute(
      `INSERT INTO _onepipe_cron_executions (execution_id, job_name, scheduled_time, kind, status) VALUES ('seed', $1, date_trunc('minute', now()) - interval '10 minutes', 'scheduled', 'completed')`,
      [name],
    )
    const minute = async () => (await db.query<{ now: Date }>("SELECT date_trunc('minute', now()) AS now"))[0]!.now.getTime()
    const before = await minute()
    await job.start()
    await until(() => ran.length >= 3)
    await new Promise((r) => setTimeout(r, 300))
    await job.stop()
    const after = await minute()
    // The catch-up runs the 3 newest ticks due at start, the newest as the regular tick. A
    // minute boundary during the test moves them by a minute and may add later regular ticks.
    const newest = new Date(ran[2]!.at).getTime()
    expect(newest).toBeGreaterThanOrEqual(before)
    expect(newest).toBeLessThanOrEqual(after)
    const iso1 = (t: number) => new Date(t).toISOString()
    expect(ran.slice(0, 3)).toEqual([
      { at: iso1(newest - 120_000), kind: 'catch_up' },
      { at: iso1(newest - 60_000), kind: 'catch_up' },
      { at: iso1(newest), kind: 'scheduled' },
    ])
    expect(ran.slice(3).every((r) => r.kind === 'scheduled' && r.at > iso1(newest))).toBe(true)
  })

  it('without catch-up, ticks missed during downtime are skipped', async () => {
    const name = jobName('no-catch-up')
    const ran: string[] = []
    // Yearly, created two years ago: the last tick (Jan 1) is long past and is not run.
    const job = track(Cron.create(name).schedule('0 0 1 1 *').db(db).handler((ctx) => void ran.push(ctx.kind)).build())
    await upsertJob(db, name, '0 0 1 1 *', undefined)
    await db.execute(`UPDATE _onepipe_cron_jobs SET created_at = now() - interval '2 years' WHERE job_name = $1`, [name])
    await job.start()
    // It looks at due ticks right after taking the lease; the margin after that can only let a wrong run show.
    await until(async () => (await db.query(`SELECT 1 FROM _onepipe_cron_locks WHERE job_name = $1 AND expires_at > now()`, [name])).length === 1)
    await new Promise((r) => setTimeout(r, 300))
    await job.stop()
    expect(ran).toEqual([])
  })

  it('never starts a tick while the previous run is going, unless overlap is allowed', async () => {
    const measure = async (overlap: boolean) => {
      let active = 0
      let peak = 0
      let runs = 0
      let secondStarted!: () => void
      const second = new Promise<void>((r) => (secondStarted = r))
      const job = track(
        Cron.create(jobName(`overlap-${overlap}`))
          .schedule('* * * * * *')
          .overlap(overlap)
          .catchUp(true)
          .db(db)
          .lease(fast)
          .handler(async () => {
            active++
            runs++
            peak = Math.max(peak, active)
            if (runs === 2) secondStarted()
            // The first run lasts until the second starts: with overlap that is the next tick;
            // without, the second can only start after 2.5 s (two ticks later) when this one gives up.
            let t: NodeJS.Timeout | undefined
            if (runs === 1) await Promise.race([second, new Promise((r) => (t = setTimeout(r, overlap ? 20_000 : 2_500)))])
            clearTimeout(t)
            active--
          })
          .build(),
      )
      await job.start()
      await until(() => runs >= 2)
      await job.stop()
      return peak
    }
    const [serial, overlapping] = await Promise.all([measure(false), measure(true)])
    expect(serial).toBe(1)
    expect(overlapping).toBeGreaterThanOrEqual(2)
  })

  it('fences the lease: a holder that lost it cannot renew, release or claim a tick with its old token', async () => {
    const name = jobName('fence')
    await upsertJob(db, name, '* * * * *', undefined)
    const a = await acquireLock(db, name, 'a', 60_000)
    expect(a.acquired).toBe(true)
    expect((await acquireLock(db, name, 'b', 60_000)).acquired).toBe(false)
    // A's lease runs out (it was paused past its TTL): B takes over with a higher token.
    await db.execute(`UPDATE _onepipe_cron_locks SET expires_at = now() - interval '1 second' WHERE job_name = $1`, [name])
    const b = await acquireLock(db, name, 'b', 60_000)
    expect(b).toMatchObject({ acquired: true, lockedBy: 'b', fencingToken: a.fencingToken + 1 })
    expect(await renewLock(db, name, 'a', a.fencingToken, 60_000)).toBeUndefined()
    expect(await releaseLock(db, name, 'a', a.fencingToken)).toBe(false)
    const tick = new Date('2030-01-01T00:00:00Z')
    expect(await claimTick(db, { executionId: 'ea', job: name, scheduledTime: tick, kind: 'scheduled', instance: 'a', token: a.fencingToken })).toEqual({ held: false, startedAt: undefined })
    const won = await claimTick(db, { executionId: 'eb', job: name, scheduledTime: tick, kind: 'scheduled', instance: 'b', token: b.fencingToken })
    expect(won.held).toBe(true)
    expect(won.startedAt).toBeInstanceOf(Date)
    // The unique row: the same tick cannot be claimed twice even by the holder.
    expect(await claimTick(db, { executionId: 'eb2', job: name, scheduledTime: tick, kind: 'scheduled', instance: 'b', token: b.fencingToken })).toEqual({ held: true, startedAt: undefined })
    expect(await renewLock(db, name, 'b', b.fencingToken, 60_000)).toBeDefined()
    expect(await releaseLock(db, name, 'b', b.fencingToken)).toBe(true)
  })

  it('trigger() runs once through the lease holder and records a manual execution', async () => {
    const name = jobName('manual')
    const by: string[] = []
    const make = (who: string) => Cron.create(name).schedule('0 0 1 1 *').db(db).lease(fast).handler((ctx) => (by.push(who), { who, kind: ctx.kind })).build()
    // Nobody is ticking: the triggering instance takes the lease itself.
    const alone = make('alone')
    const first = await alone.trigger()
    expect(first).toMatchObject({ kind: 'manual', status: 'completed', output: { who: 'alone', kind: 'manual' } })
    // A ticking instance holds the lease: a trigger from another instance is run by it.
    const holder = track(make('holder'))
    await holder.start()
    await until(async () => (await db.query(`SELECT 1 FROM _onepipe_cron_locks WHERE job_name = $1 AND expires_at > now()`, [name])).length === 1)
    const second = await make('other').trigger()
    expect(second).toMatchObject({ kind: 'manual', status: 'completed', output: { who: 'holder' } })
    const failing = await Cron.create(name).schedule('0 0 1 1 *').db(db).handler(() => { throw new Error('boom') }).build().trigger()
    expect(failing.status).toBe('completed') // run by the holder's handler, not the caller's
    expect(by).toEqual(['alone', 'holder', 'holder'])
    expect((await holder.history()).filter((h) => h.kind === 'manual')).toHaveLength(3)
  })

  it('the lease holder prunes finished runs past the retention, always keeping the newest tick', async () => {
    const name = jobName('retention')
    const job = track(Cron.create(name).schedule('0 0 1 1 *').retention('1h').db(db).lease(fast).handler(() => {}).build())
    await upsertJob(db, name, '0 0 1 1 *', undefined)
    const seed = (id: string, ago: string, kind: string) =>
      db.execute(`INSERT INTO _onepipe_cron_executions (execution_id, job_name, scheduled_time, kind, status) VALUES ($1, $2, now() - $3::interval, $4, 'completed')`, [id, name, ago, kind])
    await seed(`${name}-old`, '3 hours', 'scheduled')
    await seed(`${name}-newest`, '2 hours', 'scheduled')
    await seed(`${name}-manual`, '5 hours', 'manual')
    await seed(`${name}-recent`, '10 minutes', 'manual')
    await job.start()
    await until(async () => (await job.history()).length === 2)
    await job.stop()
    expect((await job.history()).map((h) => h.executionId)).toEqual([`${name}-recent`, `${name}-newest`])
  })

  it('a clean stop hands the lease over at once, not at the next look of the other instances', async () => {
    const name = jobName('handover')
    const slow = { ttlMs: 120_000, renewMs: 60_000 }
    const rt = (id: string): RuntimeContext => ({ instanceId: id, db, cache: undefined as never, logger: silentLogger, signal: new AbortController().signal })
    const make = () => track(Cron.create(name).schedule('0 0 1 1 *').lease(slow).handler(() => {}).build())
    const holder = async () => (await db.query<{ locked_by: string }>('SELECT locked_by FROM _onepipe_cron_locks WHERE job_name = $1 AND expires_at > now()', [name]))[0]?.locked_by
    const a = make()
    await a.attach(rt('a'))
    await until(async () => (await holder()) === 'a')
    const b = make()
    await b.attach(rt('b'))
    // A head start for b's first (failed) look at the lease. Were b to look only after a left,
    // it would take the free lease directly: the test would pass without the hand-over, never fail.
    await new Promise((r) => setTimeout(r, 100))
    await a.detach()
    // b's next look of its own is a minute away: only a's wake-up can hand the lease over within the wait.
    await until(async () => (await holder()) === 'b')
    await b.detach()
  })

  it('records a failed run with its error code', async () => {
    const job = Cron.create(jobName('fails')).schedule('0 0 1 1 *').db(db).handler(() => { throw new ConfigError('NOPE', 'no way') }).build()
    const run = await job.trigger()
    expect(run).toMatchObject({ status: 'failed', error: { code: 'NOPE', message: 'no way' } })
  })

  it('.workflow() starts one run per tick with a deterministic workflow id', async () => {
    const starts: { input: unknown; id: string }[] = []
    const wf = { start: async (input: { day: string }, o: { workflowId: string }) => void starts.push({ input, id: o.workflowId }) }
    const name = jobName('wf')
    const job = Cron.create(name).schedule('0 0 1 1 *').db(db).workflow(wf, (ctx) => ({ day: ctx.scheduledTime.toISOString().slice(0, 10) })).build()
    const run = await job.trigger()
    expect(starts).toEqual([{ input: { day: run.scheduledTime.toISOString().slice(0, 10) }, id: `cron:${name}:${run.scheduledTime.toISOString()}` }])
    expect(run.output).toEqual({ workflowId: starts[0]!.id })
  })

  it('nextRun() answers the next tick on the database clock', async () => {
    const job = Cron.create(jobName('next')).schedule('0 0 * * *').timezone('Asia/Tokyo').db(db).handler(() => {}).build()
    const next = (await job.nextRun())!
    const [{ now }] = (await db.query<{ now: Date }>('SELECT now() AS now')) as [{ now: Date }]
    expect(next.getTime()).toBeGreaterThan(now.getTime())
    expect(next.getTime() - now.getTime()).toBeLessThanOrEqual(86_400_000)
    expect(next.getUTCHours()).toBe(15) // midnight in Tokyo
  })

  it('as a Component: attach() ticks on the runtime database, detach() waits for the run within the shutdown timeout', async () => {
    let started = 0
    let aborted = false
    let finished = false
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    const job = Cron.create(jobName('component'))
      .schedule('* * * * * *')
      .lease(fast)
      .shutdownTimeout(300)
      .handler(async (ctx) => {
        started++
        // Ignores the abort on purpose and only ends when the test lets it: detach must return anyway.
        ctx.signal.addEventListener('abort', () => (aborted = true))
        await held
        finished = true
      })
      .build()
    const rt: RuntimeContext = { instanceId: 'test-instance', db, cache: undefined as never, logger: silentLogger, signal: new AbortController().signal }
    await job.attach(rt)
    await until(() => started === 1)
    // The run never ends by itself, so detach() returning at all means its wait was bounded by the shutdown timeout.
    await job.detach()
    expect(finished).toBe(false)
    expect(aborted).toBe(true)
    const [h] = await job.history({ limit: 1 })
    expect(h).toMatchObject({ instanceId: 'test-instance', status: 'running' })
    release()
    await until(() => finished)
  })
})
