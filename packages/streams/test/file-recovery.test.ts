/**
 * File store recovery and path safety, with the log damaged by hand: a torn
 * frame, a batch whose COMMIT never landed, a corrupt byte, a leftover temp
 * file and a stale lock.
 */
import { appendFile, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { OnePipeError } from '@onepipe/core'
import { FileStreamStore, ZERO_OFFSET, encodeOffset, type StreamMeta, type StreamStore } from '../src/stores/index.js'
import { FrameType, dataFrame, textFrame } from '../src/stores/file/frames.js'
import { logFileName } from '../src/stores/file/names.js'

const enc = new TextEncoder()
const dec = new TextDecoder()
const dirs: string[] = []

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'onepipe-file-recovery-'))
  dirs.push(dir)
  return dir
}

function meta(over: Partial<StreamMeta> = {}): StreamMeta {
  return { contentType: 'text/plain', createdAt: 1, nextOffset: ZERO_OFFSET, version: 0, closed: false, ...over }
}

async function append(store: StreamStore, path: string, text: string, over: Partial<StreamMeta> = {}) {
  return store.transact(path, (cur) => ({ op: 'put', meta: { ...(cur ?? meta()), ...over }, append: [{ data: enc.encode(text), count: 1 }], result: null }))
}

async function texts(store: StreamStore, path: string, from = ZERO_OFFSET): Promise<string[]> {
  const { records } = await store.read(path, { from })
  return records.map((r) => dec.decode(r.data))
}

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

describe('file store recovery', () => {
  it('cuts a torn frame at the tail and keeps appending at the right offset', async () => {
    const dir = await freshDir()
    let store = await FileStreamStore.open({ dir })
    await append(store, 's', 'one')
    await append(store, 's', 'two', { lastSeq: '2' })
    await store.close()
    const file = join(dir, logFileName('s'))
    const size = (await stat(file)).size
    // A frame header announcing 1000 bytes, followed by only 10 of them.
    const [head] = dataFrame(new Uint8Array(1000), 1)
    await appendFile(file, Buffer.concat([head, Buffer.alloc(10, 7)]))

    store = await FileStreamStore.open({ dir })
    expect(store.recovered).toEqual([{ path: 's', truncatedBytes: head.byteLength + 10 }])
    expect((await stat(file)).size).toBe(size)
    expect(await texts(store, 's')).toEqual(['one', 'two'])
    expect((await store.head('s'))?.lastSeq).toBe('2')
    const r = await append(store, 's', 'three')
    expect(r.appended[0]?.offset).toBe(encodeOffset(2, 6))
    await store.close()

    store = await FileStreamStore.open({ dir })
    expect(store.recovered).toEqual([])
    expect(await texts(store, 's')).toEqual(['one', 'two', 'three'])
    await store.close()
  })

  it('drops whole data frames whose batch never committed, and anything after a corrupt frame', async () => {
    const dir = await freshDir()
    let store = await FileStreamStore.open({ dir })
    await append(store, 'u', 'kept')
    await store.close()
    const file = join(dir, logFileName('u'))
    const [h, d] = dataFrame(enc.encode('never committed'), 1)
    await appendFile(file, Buffer.concat([h, d]))
    store = await FileStreamStore.open({ dir })
    expect(await texts(store, 'u')).toEqual(['kept'])
    await store.close()

    // A complete data+commit batch with one flipped payload byte: the checksum rejects it.
    const [h2, d2] = dataFrame(enc.encode('flipped'), 1)
    const batch = Buffer.concat([h2, d2, textFrame(FrameType.Commit, '')])
    batch[h2.byteLength + 2] = (batch[h2.byteLength + 2] as number) ^ 0xff
    await appendFile(file, batch)
    store = await FileStreamStore.open({ dir })
    expect(store.recovered[0]?.truncatedBytes).toBe(batch.byteLength)
    expect(await texts(store, 'u')).toEqual(['kept'])
    await store.close()
  })

  it('restores meta and the offset index after reopening: reads from any record boundary', async () => {
    const dir = await freshDir()
    let store = await FileStreamStore.open({ dir })
    const offsets: string[] = []
    for (let i = 0; i < 50; i++) offsets.push((await append(store, 'idx', `m${i}`))?.appended[0]?.offset ?? '')
    await store.transact('idx', (cur) => ({
      op: 'put',
      meta: { ...(cur as StreamMeta), closed: true, producers: { p: { epoch: 2, seq: 7, offset: offsets[3] ?? '' } }, ttlSeconds: 30 },
      result: null,
    }))
    const before = await store.head('idx')
    await store.close()

    store = await FileStreamStore.open({ dir })
    const after = await store.head('idx')
    expect(after).toEqual(before)
    expect(await texts(store, 'idx', offsets[47])).toEqual(['m47', 'm48', 'm49'])
    const page = await store.read('idx', { from: offsets[10] ?? '', maxRecords: 2 })
    expect(page.records.map((r) => [r.offset, dec.decode(r.data)])).toEqual([
      [offsets[10], 'm10'],
      [offsets[11], 'm11'],
    ])
    await store.close()
  })

  it('removes temp files of creations that never finished, and takes over a stale lock', async () => {
    const dir = await freshDir()
    let store = await FileStreamStore.open({ dir })
    await append(store, 'a', 'x')
    await store.close()
    await writeFile(join(dir, `${logFileName('half')}.tmp`), 'partial')
    // A lock left by a process that no longer exists (pid far above pid_max).
    await writeFile(join(dir, 'LOCK'), '999999999')
    store = await FileStreamStore.open({ dir })
    expect((await readdir(dir)).sort()).toEqual(['LOCK', logFileName('a')].sort())
    expect(await store.head('half')).toBeUndefined()
    // A second store on a directory in use is refused.
    await expect(FileStreamStore.open({ dir })).rejects.toMatchObject({ code: 'STREAMS_DIR_LOCKED' })
    await store.close()
    // A lock naming our own pid that no store of this process holds is stale (a restarted container reuses pids).
    await writeFile(join(dir, 'LOCK'), String(process.pid))
    const again = await FileStreamStore.open({ dir })
    expect(await texts(again, 'a')).toEqual(['x'])
    await again.close()
  })
})

describe('file store path safety', () => {
  it('keeps every path inside its directory, whatever it contains', async () => {
    const dir = await freshDir()
    const store = await FileStreamStore.open({ dir })
    const paths = ['../../escape', '..', 'a/../../b', '/abs/path', 'C:\\win', 'x'.repeat(400), 'ü/ß']
    for (const p of paths) await append(store, p, p)
    for (const p of paths) expect(await texts(store, p)).toEqual([p])
    const files = await readdir(dir)
    expect(files.filter((f) => f !== 'LOCK')).toHaveLength(paths.length)
    for (const f of files) expect(f).toMatch(/^[A-Za-z0-9_%~-]+(\.log)?$|^LOCK$/)
    const err = await append(store, 'nul\0byte', 'x').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OnePipeError)
    expect((err as OnePipeError).code).toBe('STREAM_BAD_PATH')
    await store.close()
  })
})

describe('file store group commit', () => {
  it('makes concurrent appends to one stream share durable writes', async () => {
    const dir = await freshDir()
    const store = await FileStreamStore.open({ dir })
    await append(store, 'g', 'first')
    const probe = await open(join(dir, 'LOCK'), 'r')
    const proto = Object.getPrototypeOf(probe) as { writev: () => Promise<unknown>; datasync: () => Promise<void> }
    await probe.close()
    const writes = vi.spyOn(proto, 'writev')
    const syncs = vi.spyOn(proto, 'datasync')
    try {
      const results = await Promise.all(Array.from({ length: 64 }, (_, i) => append(store, 'g', `c${i}`)))
      // Far fewer durable writes (O_DSYNC writes, or writes + fdatasync) than appends.
      expect(writes.mock.calls.length).toBeGreaterThanOrEqual(1)
      expect(writes.mock.calls.length).toBeLessThan(8)
      expect(syncs.mock.calls.length).toBeLessThan(8)
      const offsets = results.map((r) => r.appended[0]?.offset ?? '')
      expect(new Set(offsets).size).toBe(64)
      expect(await texts(store, 'g')).toHaveLength(65)
    } finally {
      writes.mockRestore()
      syncs.mockRestore()
      await store.close()
    }
  })
})
