import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisCache } from '@onepipe/core'
import { redisUrl, requireService, spawnNode, uniqueName, type NodeProcess } from '@onepipe/testing'

const fixture = fileURLToPath(new URL('./fixtures/limited-app.mjs', import.meta.url))

async function start(env: Record<string, string>): Promise<{ p: NodeProcess; port: number }> {
  const p = spawnNode(fixture, [], { REDIS_URL: redisUrl(), ...env })
  const line = await p.waitFor(/listening \d+/, 90_000)
  return { p, port: Number(line.split(' ')[1]) }
}

async function burst(ports: number[], n: number, spoof: boolean): Promise<{ ok: number; limited: Response[] }> {
  let ok = 0
  const limited: Response[] = []
  // 20 at a time, spread round-robin over the instances.
  for (let i = 0; i < n; i += 20) {
    const rs = await Promise.all(
      Array.from({ length: Math.min(20, n - i) }, (_, j) =>
        fetch(`http://127.0.0.1:${ports[(i + j) % ports.length]}/hello`, { headers: spoof ? { 'x-forwarded-for': `198.51.100.${(i + j) % 250}` } : {} }),
      ),
    )
    for (const r of rs) {
      if (r.status === 200) ok++
      else limited.push(r)
      await r.arrayBuffer()
    }
  }
  return { ok, limited }
}

// Three instances on one Redis share one budget per client address:
// 100 per 10 s means 100 whichever instance a request reaches.
describe('rate limits across instances', () => {
  const procs: NodeProcess[] = []
  const prefixes: string[] = []
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    const r = new RedisCache(redisUrl(), '')
    for (const prefix of prefixes) {
      const keys = await r.client.keys(`${prefix}*`)
      if (keys.length) await r.client.del(...keys)
    }
    await r.close()
  })

  it('of 1,000 requests over three instances from one address, 100 pass and the rest get 429 with Retry-After; a spoofed X-Forwarded-For changes nothing', { timeout: 120_000 }, async () => {
    await requireService('redis')
    const prefix = `${uniqueName('rl')}:`
    prefixes.push(prefix)
    const apps = await Promise.all([0, 1, 2].map(() => start({ PREFIX: prefix })))
    procs.push(...apps.map((a) => a.p))
    const { ok, limited } = await burst(apps.map((a) => a.port), 1000, true)
    // The window is 10 s; a burst that ran past it would have a second budget (the counts then say so).
    expect(ok).toBeGreaterThanOrEqual(97)
    expect(ok).toBeLessThanOrEqual(103)
    expect(limited).toHaveLength(1000 - ok)
    for (const r of limited.slice(0, 5)) {
      expect(r.status).toBe(429)
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0)
      expect(r.headers.get('ratelimit-limit')).toBe('100')
      expect(r.headers.get('ratelimit-remaining')).toBe('0')
    }
    const body = (await fetch(`http://127.0.0.1:${apps[0]!.port}/hello`).then((r) => r.json())) as { error?: { code: string; requestId: string } }
    expect(body.error?.code).toBe('RATE_LIMITED')
    // Probes are never limited.
    expect((await fetch(`http://127.0.0.1:${apps[1]!.port}/health`)).status).toBe(200)
  })

  it('behind a trusted proxy the forwarded address is the client: each gets its own budget', { timeout: 120_000 }, async () => {
    const prefix = `${uniqueName('rl')}:`
    prefixes.push(prefix)
    const app = await start({ PREFIX: prefix, TRUST: 'loopback' })
    procs.push(app.p)
    const { ok } = await burst([app.port], 300, true)
    // 250 distinct forwarded addresses, each well inside its own budget.
    expect(ok).toBe(300)
  })
})
