import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { spawnNode } from '@onepipe/testing'
import { StreamsClient } from '../src/index.js'

// The committed bin npm links (it loads dist/bin.js), as users run it.
const bin = fileURLToPath(new URL('../bin/onepipe-streams.js', import.meta.url))

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

  it('refuses an unknown store kind as a usage error (exit 2) listing the kinds', async () => {
    const p = spawnNode(bin, ['serve', '--port', '0', '--store', 'nope'])
    expect(await p.exited).toBe(2)
    expect(p.output()).toMatch(/option '--store <kind>' argument 'nope' is invalid\. Allowed choices are memory, file, redis, postgres/)
    expect(p.output()).toMatch(/Usage: onepipe-streams serve/)
  })

  it('takes the port from ONEPIPE_STREAMS_PORT and names that variable when it is not a number', async () => {
    const p = spawnNode(bin, ['serve'], { ONEPIPE_STREAMS_PORT: 'abc' })
    expect(await p.exited).toBe(2)
    expect(p.output()).toMatch(/option '--port <n>' value 'abc' from env 'ONEPIPE_STREAMS_PORT' is invalid/)
  })

  it('--help prints the usage and starts nothing', async () => {
    const p = spawnNode(bin, ['serve', '--help'])
    expect(await p.exited).toBe(0)
    expect(p.output()).toMatch(/^Usage: onepipe-streams serve \[options\]/)
    expect(p.output()).not.toMatch(/listening/)
  })
})
