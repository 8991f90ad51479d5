// The outbox: a change and its event are stored in one transaction, so
// never one without the other; offsets of concurrent changes from several
// instances are gapless, strictly increasing, and visible in commit order.
import { beforeAll, expect, it } from 'vitest'
import { ConfigError, DatabaseError, Flow, Things, type Database, type FlowEvent, type ThingEvent } from '@onepipe/sdk'
import { uniqueName } from '@onepipe/testing'
import { useDatabase } from './setup.js'

const database = useDatabase()
const N = 200

beforeAll(async () => {
  // A fault injected where it hurts: storing the event fails after the Thing's row is written.
  await database().db.execute(`
    CREATE FUNCTION things_test_boom() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.data -> 'data' ->> 'boom' = 'yes' THEN RAISE EXCEPTION 'injected failure storing the event'; END IF;
      RETURN NEW;
    END $$`)
  await database().db.execute(`
    CREATE TRIGGER things_test_boom BEFORE INSERT ON _onepipe_flow_events FOR EACH ROW EXECUTE FUNCTION things_test_boom();`)
})

const all = (t: Things): Promise<FlowEvent<ThingEvent>[]> => t.events.read({ offset: 0, limit: 10_000 })

it('a change whose event cannot be stored leaves neither the row nor the event, and no gap in the offsets', async () => {
  const things = Things.create(uniqueName('o')).db(database().db).build()
  const items = things.noun('Item')
  await items.create({ boom: 'no' }, { id: 'a' })
  await expect(items.create({ boom: 'yes' }, { id: 'b' })).rejects.toBeInstanceOf(DatabaseError)
  await expect(items.get('b')).rejects.toMatchObject({ code: 'THING_NOT_FOUND' })
  await expect(items.update('a', { boom: 'yes' })).rejects.toBeInstanceOf(DatabaseError)
  expect(await items.get('a')).toMatchObject({ $version: 1, boom: 'no' })
  await expect(items.replace('a', { boom: 'yes' })).rejects.toBeInstanceOf(DatabaseError)
  await items.update('a', { n: 1 })
  expect((await all(things)).map((e) => [e.offset, e.data.verb, e.data.version])).toEqual([
    [1, 'created', 1],
    [2, 'updated', 2],
  ])
  expect(await things.events.head()).toBe(2)
})

it('concurrent changes share a transaction, but one that fails there fails alone: the others are stored, gapless', async () => {
  const things = Things.create(uniqueName('b')).db(database().db).build()
  const items = things.noun('Item')
  const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => items.create({ i, boom: i === 17 ? 'yes' : 'no' }, { id: `i${i}` })))
  expect(results.map((r) => r.status)).toEqual(Array.from({ length: 30 }, (_, i) => (i === 17 ? 'rejected' : 'fulfilled')))
  expect((results[17] as PromiseRejectedResult).reason).toBeInstanceOf(DatabaseError)
  expect(await items.count()).toBe(29)
  const events = await all(things)
  expect(events.map((e) => e.offset)).toEqual(Array.from({ length: 29 }, (_, i) => i + 1))
  expect(events.map((e) => e.data.id)).not.toContain('i17')
  // A refusal (a taken id, a stale version) fails only its own change, without undoing the others.
  const mixed = await Promise.allSettled([items.create({ n: 1 }, { id: 'i1' }), items.create({ n: 2 }, { id: 'new' }), items.update('i2', { n: 3 }, { version: 9 }), items.update('i3', { n: 4 })])
  expect(mixed.map((r) => (r.status === 'rejected' ? (r.reason as { code: string }).code : 'ok'))).toEqual(['THING_EXISTS', 'ok', 'THING_VERSION_CONFLICT', 'ok'])
  expect((await all(things)).slice(29).map((e) => `${e.data.id}:${e.data.verb}`).sort()).toEqual(['i3:updated', 'new:created'])
})

it(`${N} concurrent creates from two Things instances on two pools give ${N} events at offsets 1…${N}, read without gaps while they commit`, async () => {
  const name = uniqueName('c')
  const second: Database = database().db.dedicated('second', 8)
  try {
    const a = Things.create(name).db(database().db).build()
    const b = Things.create(name).db(second).build()
    let done = false
    // A reader paging by offset while the appends commit: every page starts right after the last offset it saw.
    const reader = (async () => {
      let last = 0
      const seen: number[] = []
      while (!done || last < N) {
        const page = await a.events.read({ offset: last, limit: 50 })
        for (const e of page) {
          seen.push(e.offset)
          expect(e.offset).toBe(last + 1)
          last = e.offset
        }
        if (page.length === 0) await new Promise((r) => setTimeout(r, 5))
      }
      return seen
    })()
    const made = await Promise.all(Array.from({ length: N }, (_, i) => (i % 2 === 0 ? a : b).noun('Order').create({ i })))
    done = true
    expect(await reader).toEqual(Array.from({ length: N }, (_, i) => i + 1))
    const events = await all(b)
    expect(events.map((e) => e.offset)).toEqual(Array.from({ length: N }, (_, i) => i + 1))
    expect(new Set(events.map((e) => e.data.id))).toEqual(new Set(made.map((t) => t.$id)))
    expect(events.every((e) => e.data.verb === 'created' && e.data.version === 1)).toBe(true)
    // Each row was written by the transaction that stored its event; concurrent creates of one instance share transactions.
    const [x] = await database().db.query<{ same: number; transactions: number }>(
      `SELECT count(*) FILTER (WHERE t.xmin::text = e.xmin::text)::int AS same, count(DISTINCT e.xmin::text)::int AS transactions
       FROM _onepipe_flow_events e JOIN _onepipe_things t ON t.things_name = $1 AND t.type = 'Order' AND t.id = e.data ->> 'id'
       WHERE e.flow_name = $2`,
      [name, `things.${name}`],
    )
    expect(x?.same).toBe(N)
    expect(x?.transactions).toBeLessThan(N)
  } finally {
    if (second !== database().db) await second.close()
  }
})

it('concurrent updates of one Thing from two instances: every one applies, and the events carry versions 2…n+1 in offset order', async () => {
  const name = uniqueName('u')
  const second = database().db.dedicated('second', 8)
  try {
    const a = Things.create(name).db(database().db).build()
    const b = Things.create(name).db(second).build()
    await a.noun('Counter').create({ n: 0 }, { id: 'c' })
    const n = 40
    await Promise.all(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? a : b).noun('Counter').update('c', { [`k${i}`]: i })))
    const final = await b.noun('Counter').get('c')
    expect(final.$version).toBe(n + 1)
    expect(Object.keys(final).filter((k) => k.startsWith('k'))).toHaveLength(n)
    const versions = (await all(a)).map((e) => e.data.version)
    expect(versions).toEqual(Array.from({ length: n + 1 }, (_, i) => i + 1))
  } finally {
    if (second !== database().db) await second.close()
  }
})

it('appendIn joins the caller transaction: rolled back with it, and refused on a flow that lives on the streams server', async () => {
  const db = database().db
  const flow = Flow.create(uniqueName('f')).db(db).build()
  await db.transaction(async (tx) => {
    await flow.appendIn(tx, { n: 1 })
  })
  await expect(
    db.transaction(async (tx) => {
      await flow.appendIn(tx, { n: 2 })
      throw new Error('changed my mind')
    }),
  ).rejects.toThrow('changed my mind')
  const { offset } = await flow.append({ n: 3 })
  expect(offset).toBe(2)
  expect((await flow.read()).map((e) => e.data)).toEqual([{ n: 1 }, { n: 3 }])
  const remote = Flow.create(uniqueName('r')).build()
  await expect(db.transaction((tx) => remote.appendIn(tx, { n: 1 }))).rejects.toBeInstanceOf(ConfigError)
})

it('a lone create (one statement) and batched creates (one transaction) store the same event for what they return', async () => {
  const things = Things.create(uniqueName('o')).db(database().db).build()
  const items = things.noun('Item')
  const alone = await items.create({ n: 1, nested: { a: [1, 'x', null] } }, { id: 'alone' })
  const together = await Promise.all([items.create({ n: 2 }, { id: 'b1' }), items.create({ n: 3 }, { id: 'b2' })])
  await expect(items.create({ n: 4 }, { id: 'alone' })).rejects.toMatchObject({ code: 'THING_EXISTS' })
  const events = await all(things)
  expect(events.map((e) => e.data.id)).toEqual(['alone', 'b1', 'b2'])
  for (const [i, t] of [alone, ...together].entries()) {
    expect(events[i]?.data).toEqual({ type: 'Item.created', noun: 'Item', verb: 'created', id: t.$id, version: 1, data: t })
    expect(await items.get(t.$id)).toEqual(t)
  }
})

it('creates issued together are one statement: a taken id, or one given twice, fails only itself and gets no event', async () => {
  const things = Things.create(uniqueName('o')).db(database().db).build()
  const items = things.noun('Item')
  await items.create({ n: 0 }, { id: 'taken' })
  const outcomes = await Promise.allSettled([
    items.create({ n: 1 }, { id: 'a' }),
    items.create({ n: 2 }, { id: 'taken' }),
    items.create({ n: 3 }, { id: 'b' }),
    items.create({ n: 4 }, { id: 'a' }),
    things.noun('Other').create({ n: 5 }, { id: 'a' }),
  ])
  expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled'])
  for (const i of [1, 3]) expect((outcomes[i] as PromiseRejectedResult).reason).toMatchObject({ code: 'THING_EXISTS' })
  expect((await items.get('a')).n).toBe(1)
  expect((await items.get('taken')).n).toBe(0)
  const events = await all(things)
  // Offsets follow the order the creates were issued in, with no gap.
  expect(events.map((e) => [e.offset, e.data.type, e.data.id])).toEqual([
    [1, 'Item.created', 'taken'],
    [2, 'Item.created', 'a'],
    [3, 'Item.created', 'b'],
    [4, 'Other.created', 'a'],
  ])
})
