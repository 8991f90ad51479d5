import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnCommand, type NodeProcess } from '@onepipe/testing'

const root = fileURLToPath(new URL('../../..', import.meta.url))

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => {
      s.destroy()
      resolve(false)
    })
    s.once('error', () => resolve(true))
  })
}

describe('npm start', () => {
  let dir: string
  let npm: NodeProcess | undefined
  let appPid: number | undefined
  /** Seen gone by the test: its pid is no longer ours to signal. */
  let appGone = false

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'onepipe-shop-'))
  })
  afterAll(async () => {
    // Only does something when the test failed before both processes ended.
    // SIGTERM first: npm passes it on, while a SIGKILL of npm alone would
    // leave the app serving, orphaned.
    if (npm) {
      npm.kill('SIGTERM')
      let t: NodeJS.Timeout | undefined
      await Promise.race([npm.exited, new Promise((r) => (t = setTimeout(r, 20_000)))])
      clearTimeout(t)
      appPid ??= Number(/"pid":(\d+)/.exec(npm.output())?.[1])
      if (!appGone && appPid > 0 && isRunning(appPid)) process.kill(appPid, 'SIGKILL')
      npm.kill('SIGKILL')
      await npm.exited
    }
    await rm(dir, { recursive: true, force: true })
  })

  it('SIGTERM to the npm process reaches the shop: its SSE client sees the stream end, the app stops cleanly, npm exits 0 and nothing is left on the port', { timeout: 60_000 }, async () => {
    // --ignore-scripts skips only the prestart build: the test run built
    // already, and a second tsc -b would rewrite dist/ under the other test
    // files running meanwhile. The start script itself runs as users run it.
    // The shop keeps its data in PGlite under a temporary folder, never in
    // the shared PostgreSQL.
    npm = spawnCommand('npm', ['start', '--ignore-scripts'], { PORT: '0', ONEPIPE_DATA_DIR: dir, DATABASE_URL: undefined, REDIS_URL: undefined, LOG_LEVEL: 'info' }, { cwd: root })
    const line = await npm.waitFor(/Order events +http:\/\/\S+/, 90_000)
    const sseUrl = (/http:\/\/\S+/.exec(line)?.[0] ?? '').replace('//localhost:', '//127.0.0.1:')
    const port = Number(new URL(sseUrl).port)
    // The app's own pid, from its log: npm's child, not npm.
    appPid = Number(/"pid":(\d+)/.exec(await npm.waitFor(/"pid":\d+[^\n]*"OnePipe app listening"/))?.[1])
    expect(appPid).toBeGreaterThan(0)
    expect(appPid).not.toBe(npm.pid)

    const res = await fetch(sseUrl)
    expect(res.status).toBe(200)
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    expect(new TextDecoder().decode((await reader.read()).value)).toContain(': ok')
    const ended = (async () => {
      for (;;) if ((await reader.read()).done) return 'end'
    })().catch((e: unknown) => `cut: ${e instanceof Error ? e.message : String(e)}`)

    process.kill(npm.pid, 'SIGTERM')
    expect(await ended).toBe('end')
    expect(await npm.exited).toBe(0)
    const out = npm.output()
    expect(out).toContain('"shutdown complete"')
    // The shop closes its database itself; serve() closes it again (harmless) and the cache, as the process ends.
    expect(out).toMatch(/"hooks":\["db","onepipe:database","onepipe:cache"\]/)
    expect(out).not.toContain('cut short')
    appGone = !isRunning(appPid)
    expect(appGone).toBe(true)
    expect(await refuses(port)).toBe(true)
  })
})
