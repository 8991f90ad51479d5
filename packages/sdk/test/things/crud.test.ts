// Things: create/get/update/replace/delete/softDelete/restore, versions and
// optimistic concurrency, schemas, the value rule, and the events each
// change appends.
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { ConfigError, ConflictError, getManifest, type Flow, NotFoundError, silentLogger, Things, ValidationError, type FlowEvent, type RuntimeContext, type ThingEvent } from '@onepipe/sdk'
import { uniqueName } from '@onepipe/testing'
import { useDatabase } from './setup.js'

const database = useDatabase()

const customerSchema = z.object({ email: z.string().email(), vip: z.boolean().optional(), address: z.object({ city: z.string() }).optional() })
const store = () =>
  Things.create(uniqueName('s'))
    .db(database().db)
    .noun('Customer', customerSchema, { indexes: ['email', 'address.city'] })
    .build()

async function events(things: { events: Flow<ThingEvent> }): Promise<FlowEvent<ThingEvent>[]> {
  return things.events.read({ offset: 0 })
}

describe('changes', () => {
  it('create answers the Thing with its $-fields; get reads it back; the created event carries it', async () => {
    const things = store()
    const customers = things.noun('Customer')
    const c = await customers.create({ email: 'ada@example.com', address: { city: 'Paris' } }, { id: 'c-1' })
    expect(c).toMatchObject({ $id: 'c-1', $type: 'Customer', $version: 1, $deleted_at: null, email: 'ada@example.com', address: { city: 'Paris' } })
    expect(c.$created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(c.$updated_at).toBe(c.$created_at)
    expect(await customers.get('c-1')).toEqual(c)
    const [e] = await events(things)
    expect(e?.data).toEqual({ type: 'Customer.created', noun: 'Customer', verb: 'created', id: 'c-1', version: 1, data: c })
    // A time read back filters as stored (milliseconds kept exactly).
    expect(await customers.count({ $created_at: c.$created_at })).toBe(1)
  })

  it('ids default to UUIDs; a taken id is THING_EXISTS and stores nothing', async () => {
    const things = store()
    const customers = things.noun('Customer')
    const a = await customers.create({ email: 'a@example.com' })
    expect(a.$id).toMatch(/^[0-9a-f-]{36}$/)
    const err = await customers.create({ email: 'b@example.com' }, { id: a.$id }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConflictError)
    expect(err).toMatchObject({ code: 'THING_EXISTS', status: 409 })
    expect(await customers.count()).toBe(1)
    expect(await events(things)).toHaveLength(1)
  })

  it('update merges shallowly and bumps the version; replace swaps all fields; each appends updated', async () => {
    const things = store()
    const customers = things.noun('Customer')
    await customers.create({ email: 'ada@example.com', address: { city: 'Paris' } }, { id: 'c-1' })
    const u = await customers.update('c-1', { vip: true })
    expect(u).toMatchObject({ $version: 2, email: 'ada@example.com', vip: true, address: { city: 'Paris' } })
    const r = await customers.replace('c-1', { email: 'ada@new.example' }, { version: 2 })
    expect(r).toMatchObject({ $version: 3, email: 'ada@new.example' })
    expect(r).not.toHaveProperty('vip')
    expect(r.$created_at).toBe(u.$created_at)
    const all = await events(things)
    expect(all.map((e) => [e.data.verb, e.data.version])).toEqual([['created', 1], ['updated', 2], ['updated', 3]])
    expect(all[2]?.data.data).toEqual(r)
  })

  it('two updates with the same version: one wins, the other is THING_VERSION_CONFLICT', async () => {
    const things = store()
    const customers = things.noun('Customer')
    await customers.create({ email: 'ada@example.com' }, { id: 'c-1' })
    const results = await Promise.allSettled([customers.update('c-1', { vip: true }, { version: 1 }), customers.update('c-1', { vip: false }, { version: 1 })])
    const won = results.filter((r) => r.status === 'fulfilled')
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    expect(won).toHaveLength(1)
    expect(lost).toHaveLength(1)
    expect(lost[0]?.reason).toBeInstanceOf(ConflictError)
    expect(lost[0]?.reason).toMatchObject({ code: 'THING_VERSION_CONFLICT', details: { expected: 1, actual: 2 } })
    expect((await customers.get('c-1')).$version).toBe(2)
    expect((await events(things)).map((e) => e.data.verb)).toEqual(['created', 'updated'])
    await expect(customers.replace('c-1', { email: 'x@example.com' }, { version: 1 })).rejects.toMatchObject({ code: 'THING_VERSION_CONFLICT' })
    await expect(customers.delete('c-1', { version: 7 })).rejects.toMatchObject({ code: 'THING_VERSION_CONFLICT' })
  })

  it('softDelete hides from get and list unless includeDeleted; restore brings it back; repeating either changes nothing', async () => {
    const things = store()
    const customers = things.noun('Customer')
    await customers.create({ email: 'a@example.com' }, { id: 'a' })
    await customers.create({ email: 'b@example.com' }, { id: 'b' })
    const gone = await customers.softDelete('a')
    expect(gone).toMatchObject({ $version: 2 })
    expect(gone.$deleted_at).not.toBeNull()
    expect(await customers.softDelete('a')).toEqual(gone)
    await expect(customers.get('a')).rejects.toMatchObject({ code: 'THING_NOT_FOUND', status: 404 })
    expect((await customers.get('a', { includeDeleted: true })).$deleted_at).toBe(gone.$deleted_at)
    expect((await customers.list()).map((t) => t.$id)).toEqual(['b'])
    expect((await customers.list({ includeDeleted: true })).map((t) => t.$id)).toEqual(['a', 'b'])
    expect(await customers.count()).toBe(1)
    expect(await customers.count({ $deleted_at: { $exists: true } }, { includeDeleted: true })).toBe(1)
    await expect(customers.update('a', { vip: true })).rejects.toBeInstanceOf(NotFoundError)
    const back = await customers.restore('a')
    expect(back).toMatchObject({ $version: 3, $deleted_at: null })
    expect(await customers.restore('a')).toEqual(back)
    expect((await customers.list()).map((t) => t.$id)).toEqual(['a', 'b'])
    expect((await events(things)).map((e) => `${e.data.id}:${e.data.verb}:${e.data.version}`)).toEqual(['a:created:1', 'b:created:1', 'a:softDeleted:2', 'a:restored:3'])
  })

  it('delete removes for good and its event carries the Thing as it was', async () => {
    const things = store()
    const customers = things.noun('Customer')
    const c = await customers.create({ email: 'a@example.com' }, { id: 'a' })
    expect(await customers.delete('a')).toEqual(c)
    await expect(customers.get('a', { includeDeleted: true })).rejects.toMatchObject({ code: 'THING_NOT_FOUND' })
    await expect(customers.delete('a')).rejects.toMatchObject({ code: 'THING_NOT_FOUND' })
    const last = (await events(things)).at(-1)
    expect(last?.data).toEqual({ type: 'Customer.deleted', noun: 'Customer', verb: 'deleted', id: 'a', version: 2, data: c })
  })
})

describe('refusals', () => {
  it('schema, value rule, $-fields, ids and nouns are ValidationErrors naming the path, with nothing stored', async () => {
    const things = store()
    const customers = things.noun('Customer')
    const refused = async (p: Promise<unknown>, path: string) => {
      const e = await p.then(
        () => undefined,
        (err: unknown) => err,
      )
      expect(e).toBeInstanceOf(ValidationError)
      expect((e as ValidationError).issues.map((i) => i.path)).toContain(path)
    }
    await refused(customers.create({ email: 'not an email' }), 'email')
    await refused(things.noun('Vehicle').create({ speed: Number.NaN }), 'speed')
    await refused(things.noun('Vehicle').create({ name: 'a\u0000b' }), 'name')
    await refused(things.noun('Vehicle').create({ $id: 'x', name: 'a' }), '$id')
    await refused(things.noun('Vehicle').create({ nested: { at: new Date() } }), 'nested.at')
    await refused(customers.create({ email: 'a@example.com' }, { id: 'has space' }), 'id')
    await refused(customers.create([] as never), '')
    expect(() => things.noun('customer')).toThrow(ValidationError)
    expect(await customers.count()).toBe(0)
    expect(await things.noun('Vehicle').count()).toBe(0)
    expect(await events(things)).toEqual([])
    // An update whose merged fields the schema refuses changes nothing.
    await customers.create({ email: 'a@example.com' }, { id: 'a' })
    await refused(customers.update('a', { email: 'nope' }), 'email')
    expect(await customers.get('a')).toMatchObject({ $version: 1, email: 'a@example.com' })
    expect(await events(things)).toHaveLength(1)
  })

  it('a generic noun takes any plain fields; nouns keep their Things apart, and so do stores', async () => {
    const things = store()
    await things.noun('Vehicle').create({ wheels: 4 }, { id: 'v' })
    await things.noun('Boat').create({ wheels: 0 }, { id: 'v' })
    const other = store()
    await other.noun('Vehicle').create({ wheels: 2 }, { id: 'v' })
    expect((await things.noun('Vehicle').get('v')).wheels).toBe(4)
    expect((await things.noun('Boat').get('v')).wheels).toBe(0)
    expect((await other.noun('Vehicle').get('v')).wheels).toBe(2)
    expect(await things.noun('Vehicle').count()).toBe(1)
  })

  it('send appends a custom Noun.verb event; bad types and the change verbs are refused', async () => {
    const things = store()
    const { offset } = await things.send('Order.shipped', { carrier: 'ups' }, { id: 'o-7' })
    const [e] = await things.events.read({ offset: offset - 1, limit: 1 })
    expect(e?.data).toEqual({ type: 'Order.shipped', noun: 'Order', verb: 'shipped', id: 'o-7', data: { carrier: 'ups' } })
    await expect(things.send('order.shipped', {})).rejects.toBeInstanceOf(ValidationError)
    await expect(things.send('Order', {})).rejects.toBeInstanceOf(ValidationError)
    await expect(things.send('Order.created', {})).rejects.toBeInstanceOf(ValidationError)
    await expect(things.send('Order.shipped', { x: Number.POSITIVE_INFINITY })).rejects.toBeInstanceOf(ValidationError)
  })

  it('builder mistakes are ConfigErrors', () => {
    expect(() => Things.create('bad name')).toThrow(/invalid/)
    expect(() => Things.create('ok').noun('lower')).toThrow(/noun/)
    expect(() => Things.create('ok').noun('Customer', undefined, { indexes: ["a') OR 1=1 --"] })).toThrow(/index/)
    expect(() => Things.create('ok').noun('Customer').noun('Customer')).toThrow(/twice/)
  })
})

describe('as a component', () => {
  it('takes the app database at attach, mounts a read-only page of its events, and is in the manifest', async () => {
    const name = uniqueName('app')
    const things = Things.create(name).noun('Order', undefined, { indexes: ['status'] }).build()
    expect(things.kind).toBe('things')
    expect(() => things.events).toThrow(ConfigError)
    await expect(things.noun('Order').create({ status: 'open' })).rejects.toMatchObject({ code: 'THINGS_NO_DATABASE' })
    const rt: RuntimeContext = { instanceId: 'test', db: database().db, cache: undefined as never, logger: silentLogger, signal: new AbortController().signal }
    const app = new Hono()
    things.routes(app, rt)
    await things.attach(rt)
    const o = await things.noun('Order').create({ status: 'open' })
    const res = await app.request(`/__onepipe/things/${name}/events?offset=0`)
    expect(res.status).toBe(200)
    const body = (await res.json()) as { events: FlowEvent<ThingEvent>[]; nextOffset: number }
    expect(body.events.map((e) => e.data.type)).toEqual(['Order.created'])
    expect(body.events[0]?.data.id).toBe(o.$id)
    expect((await app.request(`/__onepipe/things/${name}/events`, { method: 'POST', body: '{}' })).status).toBe(404)
    expect(getManifest().primitives).toContainEqual(expect.objectContaining({ primitive: 'things', name, config: expect.objectContaining({ events: `things.${name}` }) }))
    // The declared index exists, once, whoever attached first.
    await things.attach(rt)
    const [ix] = await database().db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_indexes WHERE indexname LIKE '_onepipe_things_ix_%' AND indexdef LIKE '%status%' AND indexdef LIKE $1", [`%${name}%`])
    expect(ix?.n).toBe(1)
    await things.detach()
  })
})
