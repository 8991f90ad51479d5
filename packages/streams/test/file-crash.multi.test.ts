/**
 * Crash safety of the file store with real processes: a child appends from
 * many concurrent writers and is killed with SIGKILL mid-burst, twice (the
 * second child recovers the first one's log and keeps appending). Then every
 * acknowledged append must be readable at its acknowledged offset, offsets
 * strictly increase without gaps, every stored record is whole, and each
 * stream's meta matches its last record (meta and data commit together).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { spawnNode, type NodeProcess } from '@onepipe/testing'
import { FileStreamStore, ZERO_OFFSET, type StoredRecord } from '../src/stores/index.js'

const fixture = fileURLToPath(new URL('./fixtures/file-appender.mjs', import.meta.url))
const dec = new TextDecoder()

interface Ack {
  path: string
  id: string
  offset: string
  next: string
}

function acksOf(output: string): Ack[] {
  const out: Ack[] = []
  for (const m of output.matchAll(/^ACK \d+ (\S+) (\S+) (\S+) (\S+)$/gm)) {
    out.push({ path: m[1] as string, id: m[2] as string, offset: m[3] as string, next: m[4] as string })
  }
  return out
}

/** Runs one child until it has acknowledged `count` appends, then SIGKILLs it mid-burst. */
async function crashAfter(dir: string, round: number, count: number): Promise<{ acks: Ack[]; ready: string }> {
  const child: NodeProcess = spawnNode(fixture, [dir, String(round)])
  try {
    const ready = await child.waitFor(/^READY .*$/m)
    await child.waitFor(new RegExp(`^ACK ${count} `, 'm'), 30_000)
    child.kill('SIGKILL')
    expect(await child.exited).toBe('SIGKILL')
    return { acks: acksOf(child.output()), ready }
  } finally {
    child.kill('SIGKILL')
  }
}

describe('file store crash safety (SIGKILL mid-burst)', () => {
  const dirs: string[] = []
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })

  it('keeps every acknowledged append, strictly increasing offsets and no half-written record across two kills', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'onepipe-file-crash-'))
    dirs.push(dir)
    const first = await crashAfter(dir, 1, 400)
    const second = await crashAfter(dir, 2, 400)
    expect(second.ready).toMatch(/READY/)
    const acks = [...first.acks, ...second.acks]
    expect(acks.length).toBeGreaterThanOrEqual(800)

    const store = await FileStreamStore.open({ dir })
    try {
      for (const path of ['crash/main', 'crash/side']) {
        const { meta, records } = await store.read(path, { from: ZERO_OFFSET })
        expect(meta).toBeDefined()
        // Contiguous, strictly increasing offsets from zero to the tail.
        let expected = ZERO_OFFSET
        for (const r of records) {
          expect(r.offset).toBe(expected)
          expect(r.next > r.offset).toBe(true)
          expected = r.next
        }
        expect(meta?.nextOffset).toBe(expected)
        // Every record is whole: its declared size matches its body.
        const byId = new Map<string, StoredRecord>()
        for (const r of records) {
          const text = dec.decode(r.data)
          const m = /^(r\d-w\d+-\d+):(\d+)\|(x*)$/.exec(text)
          expect(m, `record at ${r.offset} is malformed: ${text.slice(0, 60)}`).not.toBeNull()
          expect(m?.[3]?.length).toBe(Number(m?.[2]))
          expect(byId.has(m?.[1] as string)).toBe(false)
          byId.set(m?.[1] as string, r)
        }
        // Every acknowledged append is there, at the offset it was acknowledged with.
        for (const a of acks.filter((x) => x.path === path)) {
          const r = byId.get(a.id)
          expect(r, `acknowledged ${a.id} is missing`).toBeDefined()
          expect([r?.offset, r?.next]).toEqual([a.offset, a.next])
        }
        // Meta and data committed together: lastSeq names the last stored record.
        const last = records[records.length - 1] as StoredRecord
        expect(meta?.lastSeq).toBe(/^[^:]+/.exec(dec.decode(last.data))?.[0])
      }
    } finally {
      await store.close()
    }
  }, 90_000)
})
