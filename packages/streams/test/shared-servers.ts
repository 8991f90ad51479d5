/**
 * The multi-process check shared by the Redis and PostgreSQL stores: three
 * server processes on one backend serve one stream. Appends spread over all
 * three get unique, gapless, strictly increasing offsets; a long-poll on one
 * process is woken by an append on another; SIGKILL of one process mid-burst
 * leaves the stream consistent for the others.
 */
import { fileURLToPath } from 'node:url'
import { afterAll, expect, it } from 'vitest'
import { spawnNode, type NodeProcess } from '@onepipe/testing'

const fixture = fileURLToPath(new URL('./fixtures/shared-server.mjs', import.meta.url))

export function sharedServerTests(kind: 'redis' | 'postgres', namespace: () => string, env: () => Record<string, string>): void {
  const procs: NodeProcess[] = []
  afterAll(async () => {
    for (const p of procs) {
      p.kill('SIGKILL')
      await p.exited
    }
  })

  async function start(): Promise<string> {
    const p = spawnNode(fixture, [kind, namespace()], env())
    procs.push(p)
    const line = await p.waitFor(/PORT=\d+/)
    return `http://127.0.0.1:${line.slice(5)}`
  }

  it('three processes share one stream: unique gapless offsets, cross-process wake-ups, survives kill -9 of one', async () => {
    const [a, b, c] = await Promise.all([start(), start(), start()])
    const path = '/v1/stream/flows/shared'
    expect((await fetch(a + path, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201)
    const tail = (await fetch(c + path, { method: 'HEAD' })).headers.get('stream-next-offset') ?? ''

    // A long-poll on C, woken by an append on A: C's long-polls time out only after 10 minutes,
    // so an answer within the test's deadline is the cross-process wake-up.
    const poll = fetch(`${c}${path}?offset=${tail}&live=long-poll`)
    await procs[2]!.waitFor(/WATCHING flows\/shared/)
    await fetch(a + path, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'first;' })
    const woke = await poll
    expect(woke.status).toBe(200)
    expect(await woke.text()).toBe('first;')

    // Concurrent appends through all three processes; B is killed mid-burst.
    const servers = [a, b, c]
    const acked: { body: string; next: string }[] = []
    const burst = async (server: string, tag: string) => {
      for (let i = 0; i < 30; i++) {
        const body = `${tag}${i};`
        const res = await fetch(server + path, { method: 'POST', headers: { 'content-type': 'text/plain' }, body }).catch(() => undefined)
        if (!res) return
        if (res.status !== 204 && res.status !== 200) throw new Error(`append answered ${res.status}`)
        acked.push({ body, next: res.headers.get('stream-next-offset') ?? '' })
        if (server === b && tag.endsWith('a') && i === 10) procs[1]?.kill('SIGKILL')
      }
    }
    const running = servers.flatMap((s, i) => [burst(s, `s${i}a`), burst(s, `s${i}b`)])
    await Promise.all(running)
    expect(await procs[1]?.exited).toBe('SIGKILL')
    expect(acked.length).toBeLessThan(180)
    expect(acked.length).toBeGreaterThan(120)

    const res = await fetch(`${a}${path}?offset=-1`)
    const text = await res.text()
    const parts = text.split(';').filter((x) => x.length > 0)
    expect(parts[0]).toBe('first')
    expect(new Set(parts).size).toBe(parts.length)
    for (const x of acked) expect(parts).toContain(x.body.slice(0, -1))
    // Every acknowledged next-offset is distinct: offsets were never handed out twice.
    const nexts = acked.map((x) => x.next)
    expect(new Set(nexts).size).toBe(nexts.length)
    expect(res.headers.get('stream-next-offset')).toBe([...nexts].sort().at(-1))

    // Read back one append at a time from C: offsets strictly increase, every acknowledged one is a boundary.
    let offset = '-1'
    const boundaries: string[] = []
    const bodies: string[] = []
    for (;;) {
      const r = await fetch(`${c}${path}?offset=${offset}&limit=1`)
      const body = await r.text()
      const next = r.headers.get('stream-next-offset') ?? ''
      if (body.length === 0) break
      expect(next > (boundaries.at(-1) ?? '')).toBe(true)
      boundaries.push(next)
      bodies.push(body)
      offset = next
    }
    expect(bodies.join('')).toBe(text)
    for (const n of nexts) expect(boundaries).toContain(n)
  }, 60_000)
}
