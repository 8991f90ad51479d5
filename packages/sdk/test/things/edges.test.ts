// Edges a newcomer found: an undefined filter value never widens a query, a
// field name holding "." is refused at write (filters read "." as a path),
// and a restore or soft delete with a stale version is a conflict even when
// the Thing is already in the state asked for.
import { expect, it } from 'vitest'
import { Things } from '@onepipe/sdk'
import { uniqueName } from '@onepipe/testing'
import { useDatabase } from './setup.js'

const database = useDatabase()

it('refuses an undefined filter value instead of matching everything', async () => {
  const orders = Things.create(uniqueName('e')).db(database().db).build().noun('Order')
  await orders.create({ ownerId: 'a' })
  await orders.create({ ownerId: 'b' })
  const maybe: string | undefined = undefined
  await expect(orders.list({ where: { ownerId: maybe } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', issues: [{ path: 'where.ownerId' }] })
  await expect(orders.count({ $or: [{ ownerId: 'a' }, { ownerId: maybe }] })).rejects.toMatchObject({ issues: [{ path: 'where.$or.1.ownerId' }] })
  expect(await orders.count({ ownerId: null })).toBe(0)
})

it('refuses field names holding "." anywhere in the data, and stores nothing', async () => {
  const things = Things.create(uniqueName('e')).db(database().db).build()
  const items = things.noun('Item')
  await expect(items.create({ 'a.b': 1 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', issues: [{ path: 'a.b' }] })
  await expect(items.create({ nested: { list: [{ 'x.y': 1 }] } })).rejects.toMatchObject({ issues: [{ path: 'nested.list.0.x.y' }] })
  const ok = await items.create({ a: { b: 1 } }, { id: 'ok' })
  await expect(items.update('ok', { 'c.d': 2 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
  expect(await items.get('ok')).toEqual(ok)
  expect(await items.count()).toBe(1)
  expect(await things.events.head()).toBe(1)
})

it('answers a stale version on restore or soft delete with a conflict, even when nothing would change', async () => {
  const items = Things.create(uniqueName('e')).db(database().db).build().noun('Item')
  const a = await items.create({ n: 1 }, { id: 'a' })
  await items.update('a', { n: 2 })
  await items.update('a', { n: 3 }) // version 3, not deleted
  await expect(items.restore('a', { version: a.$version })).rejects.toMatchObject({ code: 'THING_VERSION_CONFLICT' })
  expect((await items.restore('a', { version: 3 })).$version).toBe(3)
  await items.softDelete('a', { version: 3 })
  await expect(items.softDelete('a', { version: 3 })).rejects.toMatchObject({ code: 'THING_VERSION_CONFLICT' })
  expect((await items.softDelete('a')).$version).toBe(4)
})
