import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { spawnNode } from '@onepipe/testing'
import { StreamsClient } from '../src/index.js'

const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url))

describe('onepipe-streams bin', () => {
  it('serves the protocol with the chosen store and stops cleanly on SIGTERM', async () => {
    const p = spawnNode(bin, ['serve', '--port', '0', '--store', 'memory', '--long-poll-timeout-ms', '200'])
    try {
      const line = await p.waitFor(/listening on (http:\/\/\S+) \(store: memory\)/)
      const url = /(http:\/\/\S+)/.exec(line)?.[1] ?? ''
      const health = await fetch(`${url}/health`)
      expect(await health.json()).toEqual({ status: 'ok', store: 'memory' })
      const client = new StreamsClient({ url })
      const s = client.stream('flows/bin')
      await s.create()
      await s.append({ ok: true })
      expect((await s.read()).messages).toEqual([{ ok: true }])
    } finally {
      p.kill('SIGTERM')
    }
    expect(await p.exited).toBe(0)
  })

  it('serves the file store from --dir, and the data is there after a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'onepipe-bin-'))
    const start = async () => {
      const p = spawnNode(bin, ['serve', '--port', '0', '--store', 'file', '--dir', dir])
      const line = await p.waitFor(/listening on (http:\/\/\S+) \(store: file\)/)
      return { p, client: new StreamsClient({ url: /(http:\/\/\S+)/.exec(line)?.[1] ?? '' }) }
    }
    try {
      const first = await start()
      const s = first.client.stream('flows/kept')
      await s.create()
      await s.append({ n: 1 })
      await s.append({ n: 2 })
      first.p.kill('SIGTERM')
      expect(await first.p.exited).toBe(0)
      const second = await start()
      try {
        expect((await second.client.stream('flows/kept').read()).messages).toEqual([{ n: 1 }, { n: 2 }])
      } finally {
        second.p.kill('SIGTERM')
        await second.p.exited
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses an unknown store kind with a clear message', async () => {
    const p = spawnNode(bin, ['serve', '--port', '0', '--store', 'nope'])
    expect(await p.exited).toBe(1)
    expect(p.output()).toMatch(/Unknown streams store "nope"; use one of: memory/)
  })
})
