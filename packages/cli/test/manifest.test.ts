import { describe, expect, it } from 'vitest'
import { fileURLToPath } from 'node:url'
import { spawnNode } from '@onepipe/testing'

// The committed bin npm links (it loads dist/bin.js), as users run it.
const bin = fileURLToPath(new URL('../bin/onepipe.js', import.meta.url))
const shop = fileURLToPath(new URL('../../../examples/shop/dist/main.js', import.meta.url))

describe('onepipe manifest', () => {
  it('prints every built primitive of an app as JSON without starting it', async () => {
    const p = spawnNode(bin, ['manifest', shop], { PORT: '1', DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' })
    expect(await p.exited).toBe(0)
    const m = JSON.parse(p.output()) as { version: number; primitives: { primitive: string; name: string; infrastructure: string[]; config: Record<string, unknown> }[] }
    expect(m.version).toBe(1)
    const byKind = Object.fromEntries(m.primitives.map((x) => [`${x.primitive}:${x.name}`, x]))
    expect(byKind['database:shop']?.infrastructure).toEqual(['postgresql'])
    expect(byKind['rest:orders']?.config.routes).toContain('POST /api/orders')
    // arrayContaining: the shop gains primitives over time; these are the ones this test knows.
    expect(byKind['app:app']?.config.components).toEqual(expect.arrayContaining(['rest:orders', 'channel:charge-payment', 'flow:order-events', 'workflow:fulfil-order', 'cron:daily-report']))
    expect(byKind['workflow:fulfil-order']?.infrastructure).toEqual(['postgresql'])
  })

  it('exits 2 with a usage message when the entry is missing', async () => {
    const p = spawnNode(bin, ['manifest'])
    expect(await p.exited).toBe(2)
    expect(p.output()).toMatch(/missing required argument 'entry'/)
    expect(p.output()).toMatch(/Usage: onepipe manifest/)
  })

  it('exits 1 with one ENTRY_NOT_FOUND line when the entry file is not there', async () => {
    const p = spawnNode(bin, ['manifest', 'no/such/main.js'])
    expect(await p.exited).toBe(1)
    expect(p.output()).toMatch(/^onepipe: ENTRY_NOT_FOUND: No app entry file at \S+no\/such\/main\.js;/m)
  })
})
