import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { ConfigError, Flow, Projection, silentLogger, ValidationError, type Database, type RuntimeContext } from '@onepipe/sdk'
import { testCache, testDatabase } from '@onepipe/testing'
import { until } from '../flow/until.js'

let db: Database
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterAll(() => cleanup())

const Sale = z.object({ sku: z.string(), qty: z.number().int() })
let n = 0
const flowOf = () => Flow.create(`sales-${++n}`).schema(Sale).db(db).build()


describe('Projection', () => {
  it('folds the whole flow into one state and follows new appends', async () => {
    const sales = flowOf()
    for (let i = 1; i <= 5; i++) await sales.append({ sku: 'a', qty: i })
    const total = Projection.create(`total-${n}`)
      .from(sales)
      .initial({ qty: 0, events: 0 })
      .reduce((s, sale) => ({ qty: s.qty + sale.qty, events: s.events + 1 }))
      .snapshot({ every: 2 })
      .db(db)
      .build()
    expect(await total.get()).toEqual({ qty: 0, events: 0 })
    await total.start()
    await until(async () => (await total.status()).lastOffset === 5)
    expect(await total.get()).toEqual({ qty: 15, events: 5 })
    await sales.append({ sku: 'b', qty: 10 })
    await until(async () => (await total.get())?.qty === 25)
    expect(await total.status()).toMatchObject({ lastOffset: 6, eventCount: 6 })
    expect(await total.values()).toEqual([{ qty: 25, events: 6 }])
    expect(await total.keys()).toEqual([])
    await total.stop()
  })

  it('keeps one state per key, with get/keys/values/entries', async () => {
    const sales = flowOf()
    const stock = Projection.create(`stock-${n}`).from(sales).initial(0).reduce((s, sale) => s + sale.qty).keyBy((sale) => sale.sku).db(db).build()
    await sales.append({ sku: 'b', qty: 2 })
    await sales.append({ sku: 'a', qty: 1 })
    await sales.append({ sku: 'b', qty: 3 })
    await stock.sync()
    expect(await stock.get('a')).toBe(1)
    expect(await stock.get('b')).toBe(5)
    expect(await stock.get('zzz')).toBeUndefined()
    expect(await stock.keys()).toEqual(['a', 'b'])
    expect(await stock.values()).toEqual([1, 5])
    expect(await stock.entries()).toEqual([
      ['a', 1],
      ['b', 5],
    ])
    await expect(stock.get()).rejects.toBeInstanceOf(ValidationError)
  })

  it('applies each event once when several projection objects (instances) run the same projection', async () => {
    const sales = flowOf()
    const make = () =>
      Projection.create(`shared-${n}`)
        .from(sales)
        .initial({ count: 0, sum: 0 })
        .reduce((s, sale) => ({ count: s.count + 1, sum: s.sum + sale.qty }))
        .snapshot({ every: 7 })
        .db(db)
        .build()
    const runners = [make(), make(), make()]
    await Promise.all(runners.map((r) => r.start()))
    await Promise.all(Array.from({ length: 200 }, (_, i) => sales.append({ sku: 's', qty: i })))
    await until(async () => (await runners[0]!.status()).lastOffset === 200)
    expect(await runners[1]!.get()).toEqual({ count: 200, sum: (199 * 200) / 2 })
    expect((await runners[2]!.status()).eventCount).toBe(200)
    await Promise.all(runners.map((r) => r.stop()))
  })

  it('notifies subscribers of state changes and of changed keys', async () => {
    const sales = flowOf()
    const stock = Projection.create(`watched-${n}`).from(sales).initial(0).reduce((s, sale) => s + sale.qty).keyBy((sale) => sale.sku).db(db).build()
    const all: [string | undefined, number][] = []
    const onlyA: number[] = []
    const s1 = stock.subscribe((state, key) => all.push([key, state]))
    const s2 = stock.subscribeKey('a', (state) => onlyA.push(state))
    await s1.ready
    await s2.ready
    await sales.append({ sku: 'a', qty: 1 })
    await stock.sync()
    await sales.append({ sku: 'b', qty: 2 })
    await sales.append({ sku: 'a', qty: 4 })
    await stock.sync()
    await until(() => onlyA.at(-1) === 5 && all.some(([k]) => k === 'b'))
    expect(onlyA).toEqual([1, 5])
    expect(all).toContainEqual(['b', 2])
    await s1()
    await s2()
  })

  it('rebuilds from the flow', async () => {
    const sales = flowOf()
    let calls = 0
    const total = Projection.create(`rebuilt-${n}`)
      .from(sales)
      .initial(0)
      .reduce((s, sale) => {
        calls++
        return s + sale.qty
      })
      .db(db)
      .build()
    for (let i = 0; i < 4; i++) await sales.append({ sku: 'x', qty: 2 })
    await total.sync()
    expect(await total.get()).toBe(8)
    await total.rebuild()
    expect(await total.status()).toMatchObject({ lastOffset: 0, eventCount: 0 })
    expect(await total.get()).toBe(0)
    await total.sync()
    expect(await total.get()).toBe(8)
    expect(calls).toBe(8)
  })

  it('stops at an event its reducer cannot apply, without skipping it', async () => {
    const sales = flowOf()
    const picky = Projection.create(`picky-${n}`)
      .from(sales)
      .initial(0)
      .reduce((s, sale) => {
        if (sale.qty < 0) throw new Error('negative')
        return s + sale.qty
      })
      .db(db)
      .build()
    await sales.append({ sku: 'x', qty: 1 })
    await sales.append({ sku: 'x', qty: -1 })
    await expect(picky.sync()).rejects.toThrow('negative')
    expect(await picky.status()).toMatchObject({ lastOffset: 0 })
  })

  it('runs under serve() hooks on the app database and checks its configuration', async () => {
    const { cache, cleanup: done } = await testCache()
    const sales = flowOf()
    const p = Projection.create(`served-${n}`).from(sales).initial(0).reduce((s) => s + 1).build()
    await expect(p.get()).rejects.toBeInstanceOf(ConfigError)
    const rt: RuntimeContext = { instanceId: 't', db, cache, logger: silentLogger, signal: new AbortController().signal }
    await p.attach(rt)
    await sales.append({ sku: 'a', qty: 1 })
    await until(async () => (await p.get()) === 1)
    await p.detach()
    await done()
    expect(() => Projection.create('x').initial(0).reduce((s) => s).build()).toThrow(/from\(flow\)/)
    expect(() => Projection.create('x').from(sales).reduce((s) => s).build()).toThrow(/initial/)
    expect(() => Projection.create('bad name')).toThrow(ConfigError)
  })
})
