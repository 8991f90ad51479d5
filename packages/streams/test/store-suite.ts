/**
 * The one behaviour suite every StreamStore must pass. A store's test file is
 * one line:
 *
 * ```ts
 * runStoreSuite('file', async () => ({ store: new FileStreamStore({ dir }), cleanup }))
 * ```
 *
 * `makeStore` is called once per test and must return a store over EMPTY
 * storage (fresh dir, fresh key prefix, fresh schema); `cleanup` (optional)
 * runs after the store was closed.
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  InvalidOffsetError,
  ZERO_OFFSET,
  advanceOffset,
  encodeOffset,
  type AppendRecord,
  type StreamMeta,
  type StreamStore,
} from '../src/stores/index.js'
import { OnePipeError } from '@onepipe/core'

export interface StoreUnderTest {
  store: StreamStore
  cleanup?: () => Promise<void>
  /** Opens a SECOND store on the same backend (another "process"), when the backend can be shared. */
  reopen?: () => Promise<StreamStore>
}

const enc = new TextEncoder()
const dec = new TextDecoder()

function meta(over: Partial<StreamMeta> = {}): StreamMeta {
  return { contentType: 'text/plain', createdAt: Date.now(), nextOffset: ZERO_OFFSET, version: 0, closed: false, ...over }
}

function rec(text: string, count = 1): AppendRecord {
  return { data: enc.encode(text), count }
}

/** Appends records to `path`, creating it with text/plain when absent. */
async function append(store: StreamStore, path: string, ...texts: string[]) {
  return store.transact(path, (cur) => ({ op: 'put', meta: cur ?? meta(), append: texts.map((t) => rec(t)), result: null }))
}

async function readAll(store: StreamStore, path: string, from = ZERO_OFFSET): Promise<string> {
  const { records } = await store.read(path, { from })
  return records.map((r) => dec.decode(r.data)).join('')
}

/**
 * Registers the contract tests for one store. Pass `{ shared: true }` for
 * backends several processes share (Redis, PostgreSQL): `makeStore` must then
 * return `reopen`, and the suite checks cross-store reads and wake-ups.
 */
export function runStoreSuite(name: string, makeStore: () => Promise<StoreUnderTest>, options: { shared?: boolean } = {}): void {
  describe(`StreamStore contract: ${name}`, () => {
    const opened: StoreUnderTest[] = []
    const extra: StreamStore[] = []
    async function open(): Promise<StoreUnderTest> {
      const s = await makeStore()
      opened.push(s)
      return s
    }
    afterEach(async () => {
      for (const s of extra.splice(0)) await s.close()
      for (const s of opened.splice(0)) {
        await s.store.close()
        await s.cleanup?.()
      }
    })

    it('creates a stream, appends records and reads them back with increasing offsets', async () => {
      const { store } = await open()
      expect(await store.head('a')).toBeUndefined()
      const created = await store.transact('a', () => ({ op: 'put', meta: meta({ ttlSeconds: 60 }), result: 'made' }))
      expect(created.result).toBe('made')
      expect(created.meta?.nextOffset).toBe(ZERO_OFFSET)
      expect(created.meta?.ttlSeconds).toBe(60)

      const r = await append(store, 'a', 'hello', ' world', '!')
      expect(r.appended.map((a) => a.offset)).toEqual([
        ZERO_OFFSET,
        encodeOffset(1, 5),
        encodeOffset(2, 11),
      ])
      expect(r.appended[2]?.next).toBe(encodeOffset(3, 12))
      expect(r.meta?.nextOffset).toBe(encodeOffset(3, 12))
      expect((await store.head('a'))?.nextOffset).toBe(encodeOffset(3, 12))

      const { meta: m, records } = await store.read('a', { from: ZERO_OFFSET })
      expect(m?.nextOffset).toBe(encodeOffset(3, 12))
      expect(records.map((x) => [x.offset, x.next, dec.decode(x.data), x.count])).toEqual([
        [ZERO_OFFSET, encodeOffset(1, 5), 'hello', 1],
        [encodeOffset(1, 5), encodeOffset(2, 11), ' world', 1],
        [encodeOffset(2, 11), encodeOffset(3, 12), '!', 1],
      ])
      const sorted = records.map((x) => x.offset)
      expect([...sorted].sort()).toEqual(sorted)
    })

    it('keeps every meta field it is given (round-trip)', async () => {
      const { store } = await open()
      const full = meta({
        contentType: 'application/json',
        closed: true,
        closedBy: { id: 'p', epoch: 1, seq: 2 },
        ttlSeconds: 10,
        expiresAt: 1_900_000_000_000,
        lastSeq: '009',
        producers: { p: { epoch: 1, seq: 2, offset: ZERO_OFFSET } },
        fork: { source: 'src', offset: ZERO_OFFSET },
        forkSubOffset: 3,
        forkRefs: 2,
        deleted: true,
      })
      await store.transact('m', () => ({ op: 'put', meta: full, result: null }))
      const got = await store.head('m')
      expect({ ...got, version: 0 }).toEqual({ ...full, version: 0 })
    })

    it('reads from a record boundary and from the tail', async () => {
      const { store } = await open()
      const r = await append(store, 'b', 'one', 'two', 'three')
      const second = r.appended[1]?.offset ?? ''
      expect(await readAll(store, 'b', second)).toBe('twothree')
      const tail = await store.read('b', { from: r.meta?.nextOffset ?? '' })
      expect(tail.records).toEqual([])
      expect(tail.meta?.nextOffset).toBe(r.meta?.nextOffset)
    })

    it('rejects offsets that were never issued with InvalidOffsetError', async () => {
      const { store } = await open()
      await append(store, 'c', 'hello', 'world')
      for (const bad of [encodeOffset(0, 3), encodeOffset(1, 4), encodeOffset(5, 100), encodeOffset(9, 10)]) {
        await expect(store.read('c', { from: bad })).rejects.toBeInstanceOf(InvalidOffsetError)
      }
    })

    it('answers meta undefined and no records for a missing stream', async () => {
      const { store } = await open()
      expect(await store.read('nope', { from: ZERO_OFFSET })).toEqual({ meta: undefined, records: [] })
    })

    it('caps reads by maxRecords, by maxBytes (always returning at least one record) and by until', async () => {
      const { store } = await open()
      const r = await append(store, 'd', 'aaaa', 'bbbb', 'cccc', 'dddd')
      const two = await store.read('d', { from: ZERO_OFFSET, maxRecords: 2 })
      expect(two.records.map((x) => dec.decode(x.data))).toEqual(['aaaa', 'bbbb'])
      const bytes = await store.read('d', { from: ZERO_OFFSET, maxBytes: 9 })
      expect(bytes.records.map((x) => dec.decode(x.data))).toEqual(['aaaa', 'bbbb'])
      const tiny = await store.read('d', { from: ZERO_OFFSET, maxBytes: 1 })
      expect(tiny.records.map((x) => dec.decode(x.data))).toEqual(['aaaa'])
      const until = await store.read('d', { from: ZERO_OFFSET, until: r.appended[2]?.offset ?? '' })
      expect(until.records.map((x) => dec.decode(x.data))).toEqual(['aaaa', 'bbbb'])
    })

    it('stores binary payloads byte-exactly, including empty-looking and large ones', async () => {
      const { store } = await open()
      const bin = new Uint8Array(256).map((_, i) => i)
      const big = new Uint8Array(1024 * 1024).fill(7)
      await store.transact('e', () => ({ op: 'put', meta: meta({ contentType: 'application/octet-stream' }), append: [{ data: bin, count: 1 }, { data: big, count: 1 }], result: null }))
      const { records } = await store.read('e', { from: ZERO_OFFSET })
      expect(Buffer.from(records[0]?.data ?? []).equals(Buffer.from(bin))).toBe(true)
      expect(records[1]?.data.byteLength).toBe(big.byteLength)
      expect(records[1]?.data.every((b) => b === 7)).toBe(true)
    })

    it('keeps the message count of each record', async () => {
      const { store } = await open()
      await store.transact('j', () => ({ op: 'put', meta: meta({ contentType: 'application/json' }), append: [rec('{"a":1},{"b":2},{"c":3}', 3), rec('{"d":4}', 1)], result: null }))
      const { records } = await store.read('j', { from: ZERO_OFFSET })
      expect(records.map((x) => x.count)).toEqual([3, 1])
    })

    it('starts a log at the meta.nextOffset given on creation (forks)', async () => {
      const { store } = await open()
      const base = encodeOffset(4, 40)
      await store.transact('f', () => ({ op: 'put', meta: meta({ nextOffset: base, fork: { source: 'x', offset: base } }), append: [rec('own')], result: null }))
      const { records, meta: m } = await store.read('f', { from: base })
      expect(records.map((x) => [x.offset, dec.decode(x.data)])).toEqual([[base, 'own']])
      expect(m?.nextOffset).toBe(advanceOffset(base, 3))
      await expect(store.read('f', { from: ZERO_OFFSET })).rejects.toBeInstanceOf(InvalidOffsetError)
    })

    it('ignores nextOffset/version from a plan on an existing stream and bumps version', async () => {
      const { store } = await open()
      const first = await append(store, 'g', 'x')
      const v1 = first.meta?.version ?? -1
      const r = await store.transact('g', (cur) => ({ op: 'put', meta: { ...meta(), ...cur, nextOffset: ZERO_OFFSET, version: 0, lastSeq: '5' }, result: null }))
      expect(r.meta?.nextOffset).toBe(encodeOffset(1, 1))
      expect(r.meta?.lastSeq).toBe('5')
      expect(r.meta?.version).toBeGreaterThan(v1)
    })

    it('keep changes nothing; a throwing plan changes nothing and rethrows its error', async () => {
      const { store } = await open()
      await append(store, 'h', 'x')
      const before = await store.head('h')
      const kept = await store.transact('h', () => ({ op: 'keep', result: 42 }))
      expect(kept.result).toBe(42)
      expect(kept.meta?.nextOffset).toBe(before?.nextOffset)
      const boom = new OnePipeError('BOOM', 'no')
      await expect(store.transact('h', () => { throw boom })).rejects.toBe(boom)
      expect((await store.head('h'))?.nextOffset).toBe(before?.nextOffset)
      expect(await readAll(store, 'h')).toBe('x')
    })

    it('delete removes meta and records; a re-created path starts empty', async () => {
      const { store } = await open()
      await append(store, 'i', 'old', 'data')
      const del = await store.transact('i', () => ({ op: 'delete', result: true }))
      expect(del.meta).toBeUndefined()
      expect(await store.head('i')).toBeUndefined()
      expect(await store.read('i', { from: ZERO_OFFSET })).toEqual({ meta: undefined, records: [] })
      await append(store, 'i', 'new')
      expect(await readAll(store, 'i')).toBe('new')
    })

    it('reset replaces an existing stream with a fresh log', async () => {
      const { store } = await open()
      await append(store, 'k', 'old', 'stuff')
      const r = await store.transact('k', () => ({ op: 'put', meta: meta({ contentType: 'application/json' }), append: [rec('1')], reset: true, result: null }))
      expect(r.appended[0]?.offset).toBe(ZERO_OFFSET)
      expect(r.meta?.contentType).toBe('application/json')
      expect(await readAll(store, 'k')).toBe('1')
    })

    it('serializes concurrent transactions on one path: no lost update, contiguous offsets', async () => {
      const { store } = await open()
      await store.transact('n', () => ({ op: 'put', meta: meta({ lastSeq: '0' }), result: null }))
      const n = 40
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          store.transact('n', (cur) => {
            if (!cur) throw new Error('missing')
            return { op: 'put', meta: { ...cur, lastSeq: String(Number(cur.lastSeq) + 1) }, append: [rec(`m${i};`)], result: i }
          }),
        ),
      )
      const m = await store.head('n')
      expect(m?.lastSeq).toBe(String(n))
      const offsets = results.map((r) => r.appended[0]?.offset ?? '').sort()
      expect(new Set(offsets).size).toBe(n)
      const { records } = await store.read('n', { from: ZERO_OFFSET })
      expect(records).toHaveLength(n)
      for (let i = 1; i < records.length; i++) expect(records[i]?.offset).toBe(records[i - 1]?.next)
    })

    it('isolates paths, including ones with slashes and unusual characters', async () => {
      const { store } = await open()
      const paths = ['flows/orders', 'flows/orders2', 'channels/pay/calls', 'weird name/ü/%2F']
      for (const p of paths) await append(store, p, p)
      for (const p of paths) expect(await readAll(store, p)).toBe(p)
    })

    it('notifies watchers after appends, meta changes and deletes, and stops after unsubscribe', async () => {
      const { store } = await open()
      await append(store, 'w', 'x')
      let calls = 0
      let wake: () => void = () => {}
      const unsubscribe = store.watch('w', () => {
        calls++
        wake()
      })
      const next = () => new Promise<void>((resolve) => (wake = resolve))
      let p = next()
      await append(store, 'w', 'y')
      await p
      p = next()
      await store.transact('w', (cur) => ({ op: 'put', meta: { ...(cur as StreamMeta), closed: true }, result: null }))
      await p
      p = next()
      await store.transact('w', () => ({ op: 'delete', result: null }))
      await p
      expect(calls).toBeGreaterThanOrEqual(3)
      unsubscribe()
      const seen = calls
      await append(store, 'w', 'z')
      await new Promise((r) => setTimeout(r, 50))
      expect(calls).toBe(seen)
    })

    it('lists expired streams', async () => {
      const { store } = await open()
      await store.transact('old', () => ({ op: 'put', meta: meta({ expiresAt: 1000 }), result: null }))
      await store.transact('fresh', () => ({ op: 'put', meta: meta({ expiresAt: Date.now() + 60_000 }), result: null }))
      await store.transact('forever', () => ({ op: 'put', meta: meta(), result: null }))
      expect(await store.expired(Date.now(), 10)).toEqual(['old'])
    })

    if (!options.shared) return
    it('shares streams and wake-ups with a second store on the same backend', async () => {
      const s = await open()
      if (!s.reopen) throw new Error(`${name}: a shared store must return reopen() from makeStore`)
      const other = await s.reopen()
      extra.push(other)
      await append(s.store, 'shared', 'a')
      let woke = false
      const seen = new Promise<void>((resolve) =>
        other.watch('shared', () => {
          woke = true
          resolve()
        }),
      )
      await new Promise((r) => setTimeout(r, 50))
      await append(s.store, 'shared', 'b')
      await seen
      expect(woke).toBe(true)
      expect(await readAll(other, 'shared')).toBe('ab')
      await append(other, 'shared', 'c')
      expect(await readAll(s.store, 'shared')).toBe('abc')
    })
  })
}
