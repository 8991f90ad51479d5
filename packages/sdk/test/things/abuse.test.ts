// Injection and abuse: every hostile filter, sort, page or value is refused
// with a typed error naming what was wrong (never a 500), and the table and
// the event flow are left exactly as they were.
import { beforeAll, describe, expect, it } from 'vitest'
import { OnePipeError, Things, THINGS_LIMITS, ValidationError, type ListOptions, type ThingCollection, type Where } from '@onepipe/sdk'
import { testBackend, uniqueName } from '@onepipe/testing'
import { useDatabase } from './setup.js'

const database = useDatabase()
const LONG = `${'a'.repeat(60_000)}b`
const makeStore = () => Things.create(uniqueName('x')).db(database().db).noun('Item', undefined, { indexes: ['s'] }).build()
let things: ReturnType<typeof makeStore>
let items: ThingCollection

beforeAll(async () => {
  things = makeStore()
  items = things.noun('Item')
  await items.create({ s: 'hello', n: 1, x: { y: 'z' } }, { id: 'one' })
  await items.create({ s: LONG, n: 2 }, { id: 'long' })
  await items.create({ s: "it's", n: 3, 'data->>': 'odd key' }, { id: 'three' })
})

/** Everything stored by any Things store in this schema, and the flow's head: must never change. */
async function snapshot(): Promise<unknown> {
  const rows = await database().db.query('SELECT things_name, type, id, data, version, deleted_at FROM _onepipe_things ORDER BY things_name, type, id')
  return { rows, head: await things.events.head() }
}

async function refused(p: Promise<unknown>, path?: string | RegExp): Promise<ValidationError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(e, 'refused').toBeInstanceOf(ValidationError)
  const v = e as ValidationError
  expect(v.status).toBeLessThan(500)
  if (path !== undefined) expect(v.issues.map((i) => i.path).join(' | ')).toMatch(path instanceof RegExp ? path : new RegExp(`(^|\\| )${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( |$)`))
  return v
}

describe('field paths', () => {
  const hostile = ["a') OR 1=1 --", "data->>'x'", "s' OR '1'='1", 'a"b', 'a\u0000b', '__proto__', 'x.__proto__', 'a..b', '1a', 'a b', 's;DROP TABLE _onepipe_things', '', 'a.b.c.d.e.f.g.h.i', `${'a'.repeat(65)}`, 's.$x', '$where', 'data->>', '*']
  for (const path of hostile) {
    it(`refuses ${JSON.stringify(path)} in a filter, a condition, a sort and an index`, async () => {
      const before = await snapshot()
      await refused(items.list({ where: { [path]: 1 } }), `where.${path}`)
      await refused(items.list({ where: { [path]: { $eq: 'x' } } }), `where.${path}`)
      await refused(items.count({ $or: [{ s: 'hello' }, { [path]: { $exists: true } }] }), `where.$or.1.${path}`)
      await refused(items.list({ orderBy: path }), /^orderBy/)
      await refused(items.list({ orderBy: [{ field: path, direction: 'desc' }] }), 'orderBy.0')
      expect(() => Things.create('ok').noun('Item', undefined, { indexes: [path] })).toThrow(OnePipeError)
      expect(await snapshot()).toEqual(before)
    })
  }

  it('a key that only looks hostile is a field like any other when it is valid, and values are only ever values', async () => {
    expect((await items.list({ where: { s: "it's" } })).map((t) => t.$id)).toEqual(['three'])
    expect(await items.count({ s: "' OR 1=1 --" })).toBe(0)
    expect(await items.count({ s: { $in: ["hello'); DROP TABLE _onepipe_things; --", 'hello'] } })).toBe(1)
    expect(await items.count({ s: { $gt: "'" } })).toBe(3)
  })
})

describe('sorts, pages and options', () => {
  it('refuses sort injection, bad directions and too many keys', async () => {
    const before = await snapshot()
    await refused(items.list({ orderBy: 's; DROP TABLE _onepipe_things' }), 'orderBy')
    await refused(items.list({ orderBy: "-s') --" }), 'orderBy')
    await refused(items.list({ orderBy: [{ field: 's', direction: 'desc; DROP TABLE x' as 'desc' }] }), 'orderBy.0.direction')
    await refused(items.list({ orderBy: [{ field: 's', nulls: 'first' } as never] }), 'orderBy.0.nulls')
    await refused(items.list({ orderBy: Array.from({ length: 9 }, () => 's') }), 'orderBy')
    await refused(items.list({ orderBy: 42 as never }), 'orderBy')
    expect(await snapshot()).toEqual(before)
  })

  it('refuses bad limits, offsets and unknown options', async () => {
    for (const limit of [0, 1001, -1, 1.5, Number.NaN, '10']) await refused(items.list({ limit } as ListOptions), 'limit')
    for (const offset of [-1, 0.5, '1']) await refused(items.list({ offset } as ListOptions), 'offset')
    await refused(items.list({ filter: { s: 'x' } } as ListOptions), 'filter')
    expect(await items.list({ limit: 1000, offset: 10 ** 9 })).toEqual([])
  })
})

describe('operators and values', () => {
  it('refuses unknown operators, naming them, at any depth', async () => {
    const before = await snapshot()
    const e = await refused(items.list({ where: { s: { $where: 'sleep(10)' } } }), 'where.s.$where')
    expect(e.message).toMatch(/\$where/)
    await refused(items.list({ where: { $where: 'x' } }), 'where.$where')
    await refused(items.list({ where: { $nor: [{ s: 'x' }] } }), 'where.$nor')
    await refused(items.list({ where: { $and: [{ s: { $like: '%' } }] } }), 'where.$and.0.s.$like')
    await refused(items.list({ where: { s: { $eq: 'x', plain: 1 } } }), 'where.s')
    expect(await snapshot()).toEqual(before)
  })

  it('refuses values of the wrong type or without a JSON form', async () => {
    await refused(items.list({ where: { n: Number.NaN } }), 'where.n')
    await refused(items.list({ where: { n: { $gt: true } } }), 'where.n.$gt')
    await refused(items.list({ where: { n: { $gt: { a: 1 } } } }), 'where.n.$gt')
    await refused(items.list({ where: { n: { $in: 5 } } }), 'where.n.$in')
    await refused(items.list({ where: { n: { $in: [{ a: 1 }] } } }), 'where.n.$in.0')
    await refused(items.list({ where: { n: { $exists: 'yes' } } }), 'where.n.$exists')
    await refused(items.list({ where: { s: 'a\u0000' } }), 'where.s')
    await refused(items.list({ where: { $version: 'one' } }), 'where.$version')
    await refused(items.list({ where: { $created_at: { $gt: 'yesterday' } } }), 'where.$created_at.$gt')
    await refused(items.list({ where: { $version: { $regex: '1' } } }), 'where.$version.$regex')
    await refused(items.list({ where: { $or: [] } }), 'where.$or')
    await refused(items.list({ where: [] as never }), 'where')
    await refused(items.list({ where: null as never }), 'where')
  })

  it(`refuses 10,000 $in values (at most ${THINGS_LIMITS.inValues}); 1,000 pass`, async () => {
    const many = Array.from({ length: 10_000 }, (_, i) => `v${i}`)
    await refused(items.list({ where: { s: { $in: many } } }), 'where.s.$in')
    await refused(items.count({ s: { $nin: many } }), 'where.s.$nin')
    expect(await items.count({ s: { $in: [...many.slice(0, 999), 'hello'] } })).toBe(1)
  })

  it('refuses filters that nest too deep or hold too many conditions', async () => {
    let deep: Where = { s: 'x' }
    for (let i = 0; i < 20; i++) deep = { $not: deep }
    await refused(items.list({ where: deep }), /^where(\.\$not)+$/)
    const wide = { $or: Array.from({ length: 100 }, () => ({ s: 'a', n: 1, x: 2 })) }
    await refused(items.list({ where: wide }), /^where\.\$or\.\d+\./)
  })

  it('refuses a $-prefixed user field in create, update and replace', async () => {
    const before = await snapshot()
    await refused(items.create({ $evil: 1 }), '$evil')
    await refused(items.create({ ok: 1, $id: 'spoofed' }), '$id')
    await refused(items.update('one', { $version: 99 }), '$version')
    await refused(items.replace('one', { $type: 'Admin' }), '$type')
    expect(await snapshot()).toEqual(before)
  })
})

describe('$regex', () => {
  it('(a+)+$ on a 60 KB "aaa…b" ends at once: PostgreSQL\'s engine does not backtrack', async () => {
    const t0 = Date.now()
    expect(await items.list({ where: { s: { $regex: '(a+)+$' } } })).toEqual([])
    expect(await items.count({ s: { $regex: '(a+)+b$' } })).toBe(1)
    expect(Date.now() - t0).toBeLessThan(10_000)
  })

  it('refuses a 100 KB pattern, back-references, huge repetitions and other syntaxes before PostgreSQL sees them', async () => {
    const before = await snapshot()
    const e = await refused(items.list({ where: { s: { $regex: 'a'.repeat(100_000) } } }), 'where.s.$regex')
    expect(e.message).toMatch(/256/)
    await refused(items.list({ where: { s: { $regex: '(.+)(.+)\\2\\1$' } } }), 'where.s.$regex')
    await refused(items.list({ where: { s: { $regex: '(a{1,200}){1,200}' } } }), 'where.s.$regex')
    await refused(items.list({ where: { s: { $regex: 'a{1,1000}' } } }), 'where.s.$regex')
    await refused(items.list({ where: { s: { $regex: '(?x)(a {1,200}) {1,200}' } } }), 'where.s.$regex')
    await refused(items.list({ where: { s: { $regex: 5 } } }), 'where.s.$regex')
    expect(await snapshot()).toEqual(before)
  })

  it('a pattern PostgreSQL rejects is a ValidationError naming it, not a 500', async () => {
    const e = await refused(items.list({ where: { n: { $gt: 0 }, s: { $regex: 'a(' } } }), 'where.s.$regex')
    expect(e.message).toMatch(/regular expression/)
    await refused(items.count({ $or: [{ s: { $regex: '^h' } }, { x: { $regex: '[z' } }] }), 'where.$or.1.x.$regex')
    // Legal patterns still work after a refused one.
    expect((await items.list({ where: { s: { $regex: '^h' } } })).map((t) => t.$id)).toEqual(['one'])
  })

  it('a $regex query that runs past the regex timeout ends with THING_QUERY_TIMEOUT (on the server; the embedded engine has no statement timeout)', async () => {
    const slow = Things.create(uniqueName('slow')).db(database().db).regexTimeout('10ms').build()
    const big = slow.noun('Blob')
    const text = 'ab'.repeat(25_000)
    for (let i = 0; i < 200; i += 20) await Promise.all(Array.from({ length: 20 }, (_, j) => big.create({ text: `${text}${i + j}` })))
    const q = big.count({ text: { $regex: '^((a|b)(a|b))*$' } })
    if (testBackend() === 'real') {
      const e = await refused(q, 'where.text.$regex')
      expect(e.code).toBe('THING_QUERY_TIMEOUT')
      // The timeout was local to that query's transaction.
      expect(await big.count()).toBe(200)
    } else {
      expect(await q).toBe(0)
    }
  })
})
