import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { registerPrimitive, type Component } from '@onepipe/core'
import { serve } from '@onepipe/runtime'
import { StreamsClient } from '@onepipe/streams'
import { testDatabase } from '@onepipe/testing'
import type { Database } from '@onepipe/core'

function streamsComponent(name: string): Component {
  registerPrimitive({ primitive: 'flow', name, infrastructure: ['streams'], config: {} })
  return { kind: 'flow', name }
}

const silent = () => {
  const l = { debug() {}, info() {}, warn() {}, error() {}, child: () => l }
  return l
}

describe('serve() and the streams server', () => {
  let db: Database
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ db, cleanup } = await testDatabase())
  })
  afterAll(() => cleanup())
  afterEach(() => {
    delete process.env.ONEPIPE_STREAMS_URL
  })

  it('embeds the streams server when a primitive needs it and ONEPIPE_STREAMS_URL is unset, and stops it on shutdown', async () => {
    const app = await serve({ port: 0, hostname: '127.0.0.1', flows: [streamsComponent('embedded')], streams: { port: 0, store: 'memory' }, db, handleSignals: false, logger: silent() })
    const url = process.env.ONEPIPE_STREAMS_URL
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    const client = new StreamsClient({ url })
    await client.create('flows/embedded', { contentType: 'application/json' })
    await client.append('flows/embedded', { hello: 1 })
    expect((await fetch(`${url}/health`)).status).toBe(200)
    await app.shutdown()
    expect(process.env.ONEPIPE_STREAMS_URL).toBeUndefined()
    await expect(fetch(`${url}/health`)).rejects.toThrow()
  })

  it('starts nothing when ONEPIPE_STREAMS_URL points at a server', async () => {
    process.env.ONEPIPE_STREAMS_URL = 'http://127.0.0.1:1'
    const app = await serve({ port: 0, hostname: '127.0.0.1', flows: [streamsComponent('external')], streams: { port: 0, store: 'memory' }, db, handleSignals: false, logger: silent() })
    expect(process.env.ONEPIPE_STREAMS_URL).toBe('http://127.0.0.1:1')
    await app.shutdown()
  })

  it('starts nothing for an app without streams-backed primitives', async () => {
    const app = await serve({ port: 0, hostname: '127.0.0.1', db, handleSignals: false, logger: silent() })
    expect(process.env.ONEPIPE_STREAMS_URL).toBeUndefined()
    await app.shutdown()
  })
})
