// Property: for 2,000 random Things of one noun (numbers, strings with any
// Unicode, booleans, nulls, missing fields, nested objects, arrays) and many
// random filters, sorts and pages, list() and count() answer exactly what
// the documented semantics (reference.ts) say.
import fc from 'fast-check'
import { beforeAll, expect, it } from 'vitest'
import { Things, type OrderBy, type Thing, type ThingCollection, type Where } from '@onepipe/sdk'
import { uniqueName } from '@onepipe/testing'
import { matches, sortThings, type RefKey } from './reference.js'
import { useDatabase } from './setup.js'

const THINGS = 2000
const RUNS = Number(process.env.THINGS_PROPERTY_RUNS ?? 150)
const DATA_FIELDS = ['a', 'b', 'n', 's', 'flag', 'nested', 'nested.x', 'nested.y', 'nested.deep.z', 'absent']
const SORT_FIELDS = [...DATA_FIELDS, '$id', '$version', '$created_at', '$updated_at', '$deleted_at']
const REGEXES = ['^a', 'a$', 'a.b', '[ab]', '^$', '😀', 'é', 'a*b', '^[^a]', '.', 'open|closed', 'b+', '^.{2}$', '日', 'Z', '^[0-9a-f]{3}', '\\d']

const text = fc.oneof(
  fc.constantFrom('', 'a', 'b', 'ab', 'aab', 'B', 'Z', 'é', 'e\u0301', '日本', '😀', 'a😀b', 'open', 'closed', 'ﬀ', '\uffff', '\u{10ffff}', '10', '9', '-1', 'a\nb', 'true', 'false', 'null', '[]', '[1]', '{}'),
  fc.string({ unit: 'grapheme', maxLength: 5 }),
  fc.string({ unit: 'binary', maxLength: 4 }),
).filter((s) => !s.includes('\u0000'))
const num = fc.oneof(
  fc.integer({ min: -20, max: 20 }),
  fc.constantFrom(0, 1, 1.5, -2.5, 100, 101, 1e21, 5e-324, -1e-7, 0.1, 0.30000000000000004),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0)),
)
const scalar = fc.oneof(num, text, fc.boolean(), fc.constant(null))
const json = fc.oneof(
  { weight: 6, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom('x', 'y', 'k'), scalar, { maxKeys: 2 }) },
)
const nested = fc.oneof(
  { weight: 5, arbitrary: fc.record({ x: json, y: scalar, deep: fc.oneof(fc.record({ z: scalar }, { requiredKeys: [] }), scalar) }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 2 }) },
)
const thingData = fc.record({ a: json, b: scalar, n: num, s: text, flag: fc.boolean(), nested }, { requiredKeys: [] })

const database = useDatabase()
let things: ThingCollection
let all: Thing[] = []

beforeAll(async () => {
  things = Things.create(uniqueName('p')).db(database().db).noun('Item', undefined, { indexes: ['s', 'nested.x'] }).build().noun('Item')
  const data = fc.sample(thingData, { numRuns: THINGS })
  const byId = new Map<string, Thing>()
  for (let i = 0; i < data.length; i += 25) {
    const made = await Promise.all(data.slice(i, i + 25).map((d) => things.create(d)))
    for (const m of made) byId.set(m.$id, m)
  }
  // Every 20th is soft-deleted (version 2, $deleted_at set), for includeDeleted and the $-fields.
  for (const id of [...byId.keys()].filter((_, i) => i % 20 === 0)) byId.set(id, await things.softDelete(id))
  all = [...byId.values()]
}, 600_000)

/** Values that occur at a path, so filters hit real Things as well as random values. */
function occurring(field: string): unknown[] {
  const out: unknown[] = []
  for (const t of all) {
    let cur: unknown = t
    for (const seg of field.split('.')) cur = typeof cur === 'object' && cur !== null && !Array.isArray(cur) ? (cur as Record<string, unknown>)[seg] : undefined
    if (cur !== undefined) out.push(cur)
  }
  return out
}

function arbitraries() {
  const from = <T>(values: T[], other: fc.Arbitrary<T>): fc.Arbitrary<T> => (values.length === 0 ? other : fc.oneof(fc.constantFrom(...values), other))
  const value = (f: string) => from(occurring(f), json)
  const inValue = (f: string) => from(occurring(f).filter((v) => v === null || typeof v !== 'object'), scalar as fc.Arbitrary<unknown>)
  const rangeValue = (f: string) => from(occurring(f).filter((v) => typeof v === 'number' || typeof v === 'string'), fc.oneof(num, text) as fc.Arbitrary<unknown>)
  const dataCondition = (f: string): fc.Arbitrary<Record<string, unknown>> =>
    fc.oneof(
      value(f).map((v) => ({ $eq: v })),
      value(f).map((v) => ({ $ne: v })),
      fc.tuple(fc.constantFrom('$gt', '$gte', '$lt', '$lte'), rangeValue(f)).map(([op, v]) => ({ [op]: v })),
      fc.tuple(rangeValue(f), rangeValue(f)).map(([lo, hi]) => ({ $gte: lo, $lt: hi })),
      fc.array(inValue(f), { maxLength: 5 }).map((vs) => ({ $in: vs })),
      fc.array(inValue(f), { maxLength: 5 }).map((vs) => ({ $nin: vs })),
      fc.boolean().map((b) => ({ $exists: b })),
      fc.constantFrom(...REGEXES).map((r) => ({ $regex: r })),
    )
  const ids = fc.oneof(fc.constantFrom(...all.map((t) => t.$id)), fc.constantFrom('0', '8', 'f', 'zzz'))
  const times = fc.constantFrom(...all.map((t) => t.$created_at))
  const builtinLeaf: fc.Arbitrary<Where> = fc.oneof(
    fc.tuple(fc.constantFrom('$eq', '$ne', '$gt', '$gte', '$lt', '$lte'), ids).map(([op, v]) => ({ $id: { [op]: v } })),
    fc.array(ids, { maxLength: 4 }).map((vs) => ({ $id: { $in: vs } })),
    fc.constantFrom('^[0-7]', 'a', '^f.*9$').map((r) => ({ $id: { $regex: r } })),
    fc.tuple(fc.constantFrom('$eq', '$ne', '$gt', '$lte'), fc.integer({ min: 0, max: 3 })).map(([op, v]) => ({ $version: { [op]: v } })),
    fc.tuple(fc.constantFrom('$eq', '$gt', '$gte', '$lt', '$lte'), times).map(([op, v]) => ({ $created_at: { [op]: v } })),
    fc.constantFrom<Where>({ $deleted_at: { $exists: true } }, { $deleted_at: { $exists: false } }, { $deleted_at: null }, { $deleted_at: { $ne: null } }),
  )
  const dataLeaf: fc.Arbitrary<Where> = fc
    .constantFrom(...DATA_FIELDS)
    .chain((f) => fc.oneof({ weight: 4, arbitrary: dataCondition(f) }, { weight: 1, arbitrary: dataCondition(f).map((c) => ({ $not: c })) }, { weight: 2, arbitrary: value(f) }).map((c) => ({ [f]: c }) as Where))
  const leaf = fc.oneof({ weight: 5, arbitrary: dataLeaf }, { weight: 1, arbitrary: builtinLeaf })
  const { where } = fc.letrec<{ where: Where; and: Where; or: Where; not: Where; fields: Where }>((tie) => ({
    where: fc.oneof({ maxDepth: 3 }, leaf, tie('and'), tie('or'), tie('not'), tie('fields')),
    and: fc.array(tie('where'), { minLength: 1, maxLength: 3 }).map((ws) => ({ $and: ws })),
    or: fc.array(tie('where'), { minLength: 1, maxLength: 3 }).map((ws) => ({ $or: ws })),
    not: tie('where').map((w) => ({ $not: w })),
    fields: fc.array(leaf, { minLength: 2, maxLength: 3 }).map((ls) => Object.assign({}, ...ls) as Where),
  }))
  const key = fc.record({ field: fc.constantFrom(...SORT_FIELDS), direction: fc.constantFrom<'asc' | 'desc'>('asc', 'desc') })
  const orderBy: fc.Arbitrary<OrderBy | undefined> = fc.oneof(
    fc.constant(undefined),
    fc.array(key, { maxLength: 3 }),
    key.map((k) => (k.direction === 'desc' ? `-${k.field}` : k.field)),
  )
  const limit = fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 1000 }))
  const offset = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: THINGS + 10 }))
  // A sort on a field the filter pins to one type (`n: { $gt: 0 }`, then by n) takes a shorter path in SQL.
  const pinnedCondition = fc.oneof(
    fc.tuple(fc.constantFrom('$gt', '$gte', '$lt', '$lte', '$eq'), fc.oneof(num, text)).map(([op, v]) => ({ [op]: v })),
    fc.constantFrom(...REGEXES).map((r) => ({ $regex: r })),
    fc.oneof(fc.array(num, { minLength: 1, maxLength: 4 }), fc.array(text, { minLength: 1, maxLength: 4 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 2 })).map((vs) => ({ $in: vs })),
    fc.oneof(num, text, fc.boolean()),
  )
  const pinned = fc
    .tuple(fc.constantFrom(...DATA_FIELDS), pinnedCondition, fc.option(where, { nil: undefined }), fc.constantFrom<'asc' | 'desc'>('asc', 'desc'), fc.option(key, { nil: undefined }))
    .map(([f, cond, rest, direction, then]) => ({
      where: { $and: [{ [f]: cond }, ...(rest === undefined ? [] : [rest])] },
      orderBy: [{ field: f, direction }, ...(then === undefined ? [] : [then])] as OrderBy,
    }))
  return { where, orderBy, limit, offset, includeDeleted: fc.boolean(), pinned }
}

function refKeys(o: OrderBy | undefined): RefKey[] {
  if (o === undefined) return []
  return (Array.isArray(o) ? o : [o]).map((k) => (typeof k === 'string' ? (k.startsWith('-') ? { field: k.slice(1), desc: true } : { field: k, desc: false }) : { field: k.field, desc: k.direction === 'desc' }))
}

async function check(where: Where, orderBy: OrderBy | undefined, limit: number, offset: number, includeDeleted: boolean): Promise<void> {
  const pool = includeDeleted ? all : all.filter((t) => t.$deleted_at === null)
  const expected = sortThings(pool.filter((t) => matches(t, where)), refKeys(orderBy))
  const page = await things.list({ where, ...(orderBy === undefined ? {} : { orderBy }), limit, offset, includeDeleted })
  expect(page.map((t) => t.$id)).toEqual(expected.slice(offset, offset + limit).map((t) => t.$id))
  expect(page).toEqual(expected.slice(offset, offset + limit))
  expect(await things.count(where, { includeDeleted })).toBe(expected.length)
}

it(`list() and count() match the reference for random filters over ${THINGS} Things`, async () => {
  expect(all).toHaveLength(THINGS)
  const a = arbitraries()
  await fc.assert(fc.asyncProperty(a.where, a.orderBy, a.limit, a.offset, a.includeDeleted, check), { numRuns: RUNS })
}, 600_000)

it('sorts on a field the filter pins to one type match the reference too', async () => {
  const a = arbitraries()
  await fc.assert(
    fc.asyncProperty(a.pinned, a.limit, a.offset, a.includeDeleted, (q, limit, offset, includeDeleted) => check(q.where, q.orderBy, limit, offset, includeDeleted)),
    { numRuns: Math.ceil(RUNS / 3) },
  )
}, 600_000)

it('the filters the property draws are not all trivially empty or full', async () => {
  // Guards the generator: equality on a common value, a range and a regex each select a real share.
  const open = all.filter((t) => t.$deleted_at === null)
  for (const where of [{ flag: true }, { n: { $gt: 0 } }, { s: { $regex: '^a' } }, { 'nested.x': { $exists: true } }] as Where[]) {
    const n = await things.count(where)
    expect(n).toBe(open.filter((t) => matches(t, where)).length)
    expect(n).toBeGreaterThan(0)
    expect(n).toBeLessThan(open.length)
  }
})
