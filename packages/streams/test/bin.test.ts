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

  it('refuses an unknown store kind with a clear message', async () => {
    const p = spawnNode(bin, ['serve', '--port', '0', '--store', 'nope'])
    expect(await p.exited).toBe(1)
    expect(p.output()).toMatch(/Unknown streams store "nope"; use one of: memory/)
  })
})
