import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { spawnNode, type NodeProcess } from '@onepipe/testing'

/** The repository root. */
export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)))

/** The first TypeScript example of README.md, exactly as a reader copies it. */
export function readmeExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const m = /```ts\n([\s\S]*?)```/.exec(readme)
  if (!m?.[1]) throw new Error('README.md has no ```ts example')
  return m[1]
}

/** A fresh folder under test/tmp (inside the repository, so the workspace packages resolve). */
export function scratch(prefix: string): string {
  const base = join(ROOT, 'test', 'tmp')
  mkdirSync(base, { recursive: true })
  return mkdtempSync(join(base, `${prefix}-`))
}

/** Writes the example as app.mjs in `dir` and starts it with `env`; resolves once it listens. */
export async function startExample(dir: string, env: Record<string, string | undefined>): Promise<{ p: NodeProcess; url: string }> {
  const file = join(dir, 'app.mjs')
  writeFileSync(file, readmeExample())
  const p = spawnNode(file, [], env, { cwd: dir })
  const line = await p.waitFor(/"url":"http:\/\/[^"]+"/, 60_000)
  return { p, url: JSON.parse(`{${line}}`).url as string }
}

/** What the README promises of its example: orders are created and read back; bad input is a 4xx JSON error. */
export async function exerciseExample(url: string): Promise<{ id: number }> {
  const post = (body: unknown) => fetch(`${url}/api/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const created = await post({ customer: 'ada' })
  expect(created.status).toBe(201)
  const row = (await created.json()) as { id: number; customer: string }
  expect(row).toEqual({ id: expect.any(Number) as number, customer: 'ada' })
  const got = await fetch(`${url}/api/orders/${row.id}`)
  expect(got.status).toBe(200)
  expect(await got.json()).toEqual(row)

  const errors: [Promise<Response>, number, string][] = [
    [post({ customer: '' }), 400, 'VALIDATION_FAILED'],
    [post({}), 400, 'VALIDATION_FAILED'],
    [post({ customer: 'a\u0000b' }), 400, 'DB_INVALID_VALUE'],
    [fetch(`${url}/api/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' }), 400, 'INVALID_JSON'],
    [fetch(`${url}/api/orders/abc`), 400, 'DB_INVALID_VALUE'],
    [fetch(`${url}/api/orders/999999`), 404, 'NOT_FOUND'],
  ]
  for (const [res, status, code] of errors) {
    const r = await res
    expect(r.status).toBe(status)
    const body = (await r.json()) as { error: { code: string; requestId: string } }
    expect(body.error.code).toBe(code)
    expect(body.error.requestId).toBe(r.headers.get('x-request-id'))
  }
  return row
}
