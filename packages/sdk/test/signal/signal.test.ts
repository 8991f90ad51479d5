import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { ConfigError, MemoryCache, Signal, SignalBuilder, silentLogger, TimeoutError, ValidationError, type Cache, type Database, type RuntimeContext } from '@onepipe/sdk'
import { testBackend, testCache, testDatabase } from '@onepipe/testing'
import { until } from '../flow/until.js'

let db: Database
let cache: Cache
// The embedded default (PGlite + memory), also when the suite runs on servers.
let pglite: Database
const memory = new MemoryCache()
const cleanups: (() => Promise<void>)[] = [() => memory.close()]
beforeAll(async () => {
  const d = await testDatabase()
  const c = await testCache()
  db = d.db
  cache = c.cache
  cleanups.push(d.cleanup, c.cleanup)
  if (testBackend() === 'real') {
    const e = await testDatabase({ backend: 'embedded' })
    pglite = e.db
    cleanups.push(e.cleanup)
  }
})
afterAll(async () => {
  for (const c of cleanups) await c()
})

let n = 0
const backends: [string, (b: SignalBuilder<unknown>) => SignalBuilder<unknown>][] = [
  ['cache', (b) => b.cache(cache)],
  ['database', (b) => b.db(db)],
  ...(testBackend() === 'real'
    ? ([
        ['memory cache (embedded default)', (b) => b.cache(memory)],
        ['PGlite database (embedded default)', (b) => b.db(pglite)],
      ] satisfies typeof backends)
    : []),
]


describe.each(backends)('Signal on the %s', (_, store) => {
  const counter = () => store(Signal.create(`count-${++n}`).schema(z.number().int()).default(0)).build() as unknown as Signal<number>
  const settings = () =>
    store(Signal.create(`settings-${++n}`).schema(z.object({ theme: z.enum(['light', 'dark']), size: z.number() })).default({ theme: 'light', size: 12 })).build() as unknown as Signal<{ theme: 'light' | 'dark'; size: number }>

  it('starts at the default and versions every write', async () => {
    const s = counter()
    expect(await s.read()).toEqual({ value: 0, version: 0 })
    await s.set(5)
    expect(await s.read()).toEqual({ value: 5, version: 1 })
    expect(await s.update((v) => v * 2)).toBe(10)
    expect(await s.reset()).toBe(0)
    expect(await s.read()).toEqual({ value: 0, version: 3 })
  })

  it('loses no write under concurrent updates from several signal objects', async () => {
    const name = `shared-${++n}`
    const objs = [0, 1, 2].map(() => store(Signal.create(name).default(0)).build() as unknown as Signal<number>)
    await Promise.all(objs.flatMap((s) => Array.from({ length: 30 }, () => s.update((v) => v + 1))))
    expect(await objs[0]!.get()).toBe(90)
    expect((await objs[1]!.read()).version).toBe(90)
  })

  it('resolves each of many concurrent updates with the value its own fn produced, one version each', async () => {
    const s = counter()
    const values = await Promise.all(Array.from({ length: 500 }, () => s.update((v) => v + 1)))
    expect(values.sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1))
    const more = await Promise.all(Array.from({ length: 3 }, () => s.change((v) => v * 2)))
    expect(more).toEqual([
      { value: 1000, version: 501 },
      { value: 2000, version: 502 },
      { value: 4000, version: 503 },
    ])
    expect(await s.read()).toEqual({ value: 4000, version: 503 })
  })

  it('fails only the updater that throws or produces an invalid value; the others in its batch apply', async () => {
    const s = settings()
    const seen: [number, number][] = []
    const stop = s.subscribe((v, version) => seen.push([v.size, version]))
    await stop.ready
    // Issued in one tick, so they are written as one batch.
    const results = await Promise.allSettled([
      s.update((v) => ({ ...v, size: v.size + 1 })),
      s.update(() => {
        throw new Error('boom')
      }),
      s.update((v) => ({ ...v, size: 'big' as never })),
      s.update((v) => {
        // Changes its argument in place, then fails: the next updater must not see it.
        v.size = 1000
        throw new Error('half done')
      }),
      s.update(async (v) => ({ ...v, size: v.size + 10 })),
    ])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected', 'fulfilled'])
    expect(results[0]).toEqual({ status: 'fulfilled', value: { theme: 'light', size: 13 } })
    expect((results[1] as PromiseRejectedResult).reason).toEqual(new Error('boom'))
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(ValidationError)
    expect((results[3] as PromiseRejectedResult).reason).toEqual(new Error('half done'))
    expect(results[4]).toEqual({ status: 'fulfilled', value: { theme: 'light', size: 23 } })
    expect(await s.read()).toEqual({ value: { theme: 'light', size: 23 }, version: 2 })
    // One write for the batch: subscribers hear its last version.
    await until(() => seen.at(-1)?.[1] === 2)
    expect(seen).toEqual([[23, 2]])
    await stop()
  })

  it("refuses, per updater, a result that OnePipe's value rule refuses", async () => {
    const s = store(Signal.create(`free-${++n}`).default<unknown>(1)).build()
    const results = await Promise.allSettled([
      s.update(() => Number.NaN),
      s.update((v) => (v as number) + 1),
      s.update(() => new Date()),
      s.update(() => undefined),
      s.update((v) => (v as number) * 10),
    ])
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).constructor.name))).toEqual(['ValidationError', 2, 'ValidationError', 'ValidationError', 20])
    expect(await s.read()).toEqual({ value: 20, version: 2 })
  })

  it('runs an updater again on the new value when another writer got in first, and applies only that run', async () => {
    const name = `raced-${++n}`
    const a = store(Signal.create(name).default(0)).build() as unknown as Signal<number>
    const b = store(Signal.create(name).default(0)).build() as unknown as Signal<number>
    const saw: number[] = []
    let release = () => {}
    const gate = new Promise<void>((r) => (release = r))
    const updating = a.update(async (v) => {
      saw.push(v)
      await gate
      return v + 1
    })
    await until(() => saw.length === 1)
    await b.set(100)
    release()
    expect(await updating).toBe(101)
    expect(saw).toEqual([0, 100])
    expect(await b.read()).toEqual({ value: 101, version: 2 })
  })

  it('fails an updater only on the current value, never on one this object remembers from an earlier write', async () => {
    const name = `remembered-${++n}`
    const a = store(Signal.create(name).default(0)).build() as unknown as Signal<number>
    const b = store(Signal.create(name).default(0)).build() as unknown as Signal<number>
    expect(await a.update((v) => v + 1)).toBe(1)
    await b.set(5)
    const atLeast3 = (v: number) => {
      if (v < 3) throw new Error(`too small: ${v}`)
      return v + 1
    }
    expect(await a.update(atLeast3)).toBe(6)
    expect(await b.read()).toEqual({ value: 6, version: 3 })
  })

  it('patches objects and validates every value, leaving the stored value unchanged on error', async () => {
    const s = settings()
    expect(await s.patch({ theme: 'dark' })).toEqual({ theme: 'dark', size: 12 })
    const err = await s.patch({ size: 'big' } as never).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ValidationError)
    expect((err as ValidationError).issues[0]?.path).toBe('size')
    await expect(s.set({ theme: 'blue' } as never)).rejects.toBeInstanceOf(ValidationError)
    const any = store(Signal.create(`any-${++n}`).default('')).build() as unknown as Signal<string>
    await expect(any.set('nul\u0000')).rejects.toBeInstanceOf(ValidationError)
    expect(await s.read()).toEqual({ value: { theme: 'dark', size: 12 }, version: 1 })
    await expect(counter().patch({} as never)).rejects.toBeInstanceOf(ValidationError)
  })

  it('tells subscribers of other signal objects about every change, in version order', async () => {
    const name = `watched-${++n}`
    const writer = store(Signal.create(name).default(0)).build() as unknown as Signal<number>
    const reader = store(Signal.create(name).default(0)).build() as unknown as Signal<number>
    const seen: [number, number][] = []
    const stop = reader.subscribe((v, version) => seen.push([v, version]))
    await stop.ready
    for (let i = 1; i <= 5; i++) await writer.set(i * 10)
    await until(() => seen.at(-1)?.[1] === 5)
    expect(seen.map(([, v]) => v)).toEqual([...seen.map(([, v]) => v)].sort((a, b) => a - b))
    expect(seen.at(-1)).toEqual([50, 5])
    await stop()
  })

  it('waitFor resolves on a later change and times out with a TimeoutError', async () => {
    const s = counter()
    const waiting = s.waitFor((v) => v >= 3, 20_000)
    for (let i = 0; i < 3; i++) await s.update((v) => v + 1)
    expect(await waiting).toBe(3)
    // Already true: resolves from the current value (the deadline only bounds a broken wait).
    expect(await s.waitFor((v) => v === 3, 20_000)).toBe(3)
    await expect(s.waitFor((v) => v > 100, 100)).rejects.toBeInstanceOf(TimeoutError)
  })

  it('serves GET, PUT, PATCH and an SSE stream of changes', async () => {
    const s = settings()
    const app = new Hono()
    s.routes(app)
    const path = `/__onepipe/signals/${s.name}`
    expect(await (await app.request(path)).json()).toEqual({ value: { theme: 'light', size: 12 }, version: 0 })
    const put = await app.request(path, { method: 'PUT', body: JSON.stringify({ theme: 'dark', size: 14 }), headers: { 'content-type': 'application/json' } })
    expect(await put.json()).toEqual({ value: { theme: 'dark', size: 14 }, version: 1 })
    const bad = await app.request(path, { method: 'PATCH', body: JSON.stringify({ size: 'x' }), headers: { 'content-type': 'application/json' } })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('VALIDATION_FAILED')
    const res = await app.request(`${path}/stream`)
    const reader = res.body!.getReader()
    let text = ''
    const readUntil = async (re: RegExp) => {
      while (!re.test(text)) text += new TextDecoder().decode((await reader.read()).value)
    }
    await readUntil(/id: 1\n/)
    const patch = await app.request(path, { method: 'PATCH', body: JSON.stringify({ size: 16 }), headers: { 'content-type': 'application/json' } })
    expect(await patch.json()).toEqual({ value: { theme: 'dark', size: 16 }, version: 2 })
    await readUntil(/id: 2\ndata: .*"size":16/)
    await reader.cancel()
    await s.close()
  })
})

describe('Signal configuration', () => {
  it('needs a default, a valid name, and a store (given or from serve)', async () => {
    expect(() => Signal.create('x').build()).toThrow(/default/)
    expect(() => Signal.create('bad name')).toThrow(ConfigError)
    const s = Signal.create('later').default(1).build()
    await expect(s.get()).rejects.toBeInstanceOf(ConfigError)
    const rt: RuntimeContext = { instanceId: 't', db, cache, logger: silentLogger, signal: new AbortController().signal }
    await s.attach(rt)
    expect(await s.update((v) => v + 1)).toBe(2)
    await s.detach()
  })
})
