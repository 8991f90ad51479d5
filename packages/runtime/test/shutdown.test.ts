import { describe, expect, it } from 'vitest'
import { fileURLToPath } from 'node:url'
import { spawnNode } from '@onepipe/testing'

const fixture = fileURLToPath(new URL('./fixtures/slow-app.mjs', import.meta.url))

describe('SIGTERM', () => {
  it('lets an in-flight request finish, refuses new ones, then runs the hooks by priority and exits 0', async () => {
    const p = spawnNode(fixture, [], { LOG_LEVEL: 'info' })
    const port = Number((await p.waitFor(/PORT=(\d+)/)).split('=')[1])
    const slow = fetch(`http://127.0.0.1:${port}/slow`).then(async (r) => ({ status: r.status, body: await r.json() }))
    await p.waitFor(/SLOW_STARTED/)
    p.kill('SIGTERM')
    await p.waitFor(/shutting down/)
    // A request arriving during the drain is refused, not accepted and dropped.
    const late = await fetch(`http://127.0.0.1:${port}/slow`).then((r) => r.status).catch(() => 'refused')
    expect([503, 'refused']).toContain(late)
    expect(await slow).toEqual({ status: 200, body: { done: true } })
    expect(await p.exited).toBe(0)
    const out = p.output()
    const order = ['SLOW_FINISHED', 'HOOK first', 'HOOK second', 'HOOK third'].map((s) => out.indexOf(s))
    expect(order.every((i) => i >= 0)).toBe(true)
    expect([...order].sort((a, b) => a - b)).toEqual(order)
    expect(out).toContain('shutdown complete')
  })
})
