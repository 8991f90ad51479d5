// `onepipe dev`: the app runs from its TypeScript source, a saved change
// restarts it gracefully (an in-flight request finishes first), the new
// answer appears, and data written before the restart is still there (the
// embedded database in .onepipe/ is kept and not watched).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { resolve } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { spawnNode, uniqueName, waitFor } from '@onepipe/testing'

const repo = resolve(import.meta.dirname, '../../..')
// Inside the repository, so the app resolves @onepipe/* from its node_modules; test/tmp is ignored by git.
const dir = resolve(repo, 'test/tmp', uniqueName('dev'))
const bin = resolve(repo, 'packages/cli/bin/onepipe.js')

const app = (version: number) => `import { Database, REST } from '@onepipe/sdk'
import { serve } from '@onepipe/runtime'

const db = Database.create('main').migration('000001_notes', 'CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)').build()
const routes = REST.create('dev').db(db)
  .get('/v', async () => ({ version: ${version} as number }))
  .get('/slow', async () => { await new Promise((r) => setTimeout(r, 1500)); return { version: ${version} as number, slow: true } })
  .post('/notes', { status: 201 }, async (ctx) => (await ctx.db.query('INSERT INTO notes (body) VALUES ($1) RETURNING id', [String(((await ctx.body()) as { body?: unknown }).body)]))[0])
  .get('/notes', async (ctx) => ctx.db.query('SELECT id, body FROM notes ORDER BY id'))
  .build()
await serve({ db, rest: [routes] })
`

afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no port'))))
    })
  })
}

it('restarts on a saved change: in-flight requests finish, the new answer appears, data is kept', async () => {
  mkdirSync(resolve(dir, 'src'), { recursive: true })
  writeFileSync(resolve(dir, 'src/main.ts'), app(1))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const dev = spawnNode(bin, ['dev'], { PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: undefined, ONEPIPE_DATA_DIR: undefined, ONEPIPE_DB_SCHEMA: undefined, LOG_LEVEL: 'info' }, { cwd: dir })
  try {
    await dev.waitFor(/onepipe dev: app http:\/\/\S+/, 90_000)
    const get = async (path: string) => (await (await fetch(`${url}${path}`)).json()) as Record<string, unknown>
    expect(await get('/v')).toEqual({ version: 1 })
    const created = await fetch(`${url}/notes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ body: 'before the restart' }) })
    expect(created.status).toBe(201)

    // A request still running when the change lands is answered by the old app before it stops.
    const inFlight = fetch(`${url}/slow`).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }))
    await new Promise((r) => setTimeout(r, 200))
    const saved = Date.now()
    writeFileSync(resolve(dir, 'src/main.ts'), app(2))
    expect(await inFlight).toEqual({ status: 200, body: { version: 1, slow: true } })

    // Measured, not asserted: the time from the save to the new answer (the bar is 3 s on a quiet machine).
    await waitFor(async () => (await get('/v').catch(() => undefined))?.version === 2, { timeoutMs: 90_000, intervalMs: 50, what: 'the new answer after the save' })
    console.log(`onepipe dev: save → new answer in ${Date.now() - saved} ms`)
    expect(await get('/notes')).toEqual([{ id: 1, body: 'before the restart' }])
    // And a save with nothing in flight.
    const again = Date.now()
    writeFileSync(resolve(dir, 'src/main.ts'), app(3))
    await waitFor(async () => (await get('/v').catch(() => undefined))?.version === 3, { timeoutMs: 90_000, intervalMs: 50, what: 'the answer after the second save' })
    console.log(`onepipe dev: save → new answer in ${Date.now() - again} ms with nothing in flight`)
    expect(await get('/notes')).toEqual([{ id: 1, body: 'before the restart' }])
    expect(dev.output()).toMatch(/src\/main\.ts changed; restarting/)
  } finally {
    dev.kill('SIGTERM')
    expect(await dev.exited).toBe(0)
  }
  // The app stopped with it: its port is free again.
  await expect(fetch(`${url}/v`)).rejects.toThrow()
})

it('answers --help and refuses unknown options and a missing entry', async () => {
  const help = spawnNode(bin, ['dev', '--help'])
  expect(await help.exited).toBe(0)
  expect(help.output()).toMatch(/Usage: onepipe dev/)
  const bad = spawnNode(bin, ['dev', '--nope'])
  expect(await bad.exited).toBe(2)
  expect(bad.output()).toMatch(/unknown option '--nope'[\s\S]*Usage: onepipe dev/)
  const missing = spawnNode(bin, ['dev', 'nowhere.ts'])
  expect(await missing.exited).not.toBe(0)
  expect(missing.output()).toMatch(/ENTRY_NOT_FOUND|No app entry/)
})
