import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { Database } from '@onepipe/core'
import { spawnNode, type NodeProcess } from '@onepipe/testing'

const writer = fileURLToPath(new URL('./fixtures/embedded-writer.mjs', import.meta.url))

async function post(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST' })
  expect(res.status).toBe(200)
  return ((await res.json()) as number[])[0] as number
}
async function all(port: number): Promise<number[]> {
  return (await (await fetch(`http://127.0.0.1:${port}/`)).json()) as number[]
}
async function start(dir: string): Promise<{ p: NodeProcess; port: number }> {
  const p = spawnNode(writer, [], { DIR: dir })
  const line = await p.waitFor(/listening \d+/, 90_000)
  return { p, port: Number(line.split(' ')[1]) }
}

// PGlite has no lock of its own: two processes on one folder each hand out
// the same ids and lose each other's commits. OnePipe locks the folder.
describe('the embedded database is single-writer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onepipe-lock-'))
  const procs: NodeProcess[] = []
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    rmSync(dir, { recursive: true, force: true })
  })

  it('a second process on the same folder fails with an error naming the folder, and the first keeps every acknowledged write', async () => {
    const first = await start(dir)
    procs.push(first.p)
    const acked = [await post(first.port), await post(first.port), await post(first.port)]

    const second = spawnNode(writer, [], { DIR: dir })
    procs.push(second)
    expect(await second.exited).toBe(3)
    expect(second.output()).toContain('DB_DIR_LOCKED')
    expect(second.output()).toContain(dir)
    expect(second.output()).toContain(`process ${first.p.pid}`)

    acked.push(await post(first.port), await post(first.port))
    first.p.kill('SIGTERM')
    expect(await first.p.exited).toBe(0)

    const again = await start(dir)
    procs.push(again.p)
    expect(await all(again.port)).toEqual(acked)
    expect(new Set(acked).size).toBe(5)
    again.p.kill('SIGTERM')
    expect(await again.p.exited).toBe(0)
  })

  it('a lock left by a process killed with SIGKILL is stale: the next process opens the folder with every acknowledged write', async () => {
    const first = await start(dir)
    procs.push(first.p)
    const before = await all(first.port)
    const id = await post(first.port)
    first.p.kill('SIGKILL')
    await first.p.exited
    const next = await start(dir)
    procs.push(next.p)
    expect(await all(next.port)).toEqual([...before, id])
    next.p.kill('SIGTERM')
    expect(await next.p.exited).toBe(0)
  })

  it('the same folder opened twice in one process is refused too', async () => {
    const d = mkdtempSync(join(tmpdir(), 'onepipe-lock-'))
    const a = Database.create('a').pglite(d).build()
    const b = Database.create('b').pglite(d).build()
    await a.ready()
    await expect(b.ready()).rejects.toMatchObject({ code: 'DB_DIR_LOCKED' })
    await a.close()
    // Once the first is closed, the folder is free again.
    await b.ready()
    await b.close()
    rmSync(d, { recursive: true, force: true })
  })
})
