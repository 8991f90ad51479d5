import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Database, lockDirectory } from '@onepipe/core'
import { migrationLines, npx, root } from './npx.js'

const app = fileURLToPath(new URL('./fixtures/app/main.js', import.meta.url))
const version = (JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

let empty = ''
beforeAll(async () => {
  empty = await mkdtemp(join(tmpdir(), 'onepipe-cli-help-'))
})
afterAll(async () => {
  await rm(empty, { recursive: true, force: true })
})

// Each npx spawn costs about half a second; these only read, so they run side by side.
describe.concurrent('npx onepipe / onepipe-streams: help, version and usage errors', () => {
  it('onepipe --help prints the command tree on stdout and exits 0', async () => {
    const r = await npx(['onepipe', '--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage: onepipe \[options\] \[command\]/)
    for (const c of ['manifest <entry>', 'migrate [options] [entry]', 'streams', '--version']) expect(r.stdout).toContain(c)
  })

  it('onepipe-streams --help prints its usage and exits 0', async () => {
    const r = await npx(['onepipe-streams', '--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage: onepipe-streams/)
    expect(r.stdout).toContain('serve [options]')
  })

  it('--version prints the package version', async () => {
    const r = await npx(['onepipe', '--version'])
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe(version)
  })

  it('manifest --help prints usage and never imports the entry (a missing one is not reported)', async () => {
    const r = await npx(['onepipe', 'manifest', 'no/such/entry.js', '--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage: onepipe manifest \[options\] <entry>/)
    expect(r.stderr).not.toMatch(/ENTRY_NOT_FOUND/)
  })

  it('migrate --help, with or without an entry, migrates nothing: the data folder stays empty', async () => {
    const env = { DATABASE_URL: undefined, ONEPIPE_DATA_DIR: empty }
    const [bare, withEntry] = await Promise.all([npx(['onepipe', 'migrate', '--help'], env), npx(['onepipe', 'migrate', app, '-h'], env)])
    for (const r of [bare, withEntry]) {
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/^Usage: onepipe migrate \[options\] \[command\] \[entry\]/)
    }
    expect(await readdir(empty)).toEqual([])
  })

  it('streams serve --help prints the server flags and starts no server', async () => {
    const r = await npx(['onepipe', 'streams', 'serve', '--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage: onepipe streams serve \[options\]/)
    expect(r.stdout).toContain('--port <n>')
    expect(r.stdout).not.toContain('listening')
  })

  it('an unknown option exits 2 with the error and the usage on stderr', async () => {
    const r = await npx(['onepipe', '--bogus'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("error: unknown option '--bogus'")
    expect(r.stderr).toContain('Usage: onepipe [options] [command]')
    expect(r.stdout).toBe('')
  })

  it('an unknown command exits 2', async () => {
    const r = await npx(['onepipe', 'nope'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("error: unknown command 'nope'")
    expect(r.stderr).toContain('Usage: onepipe')
  })

  it('no command is a usage error: usage on stderr, exit 2', async () => {
    const r = await npx(['onepipe'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('Usage: onepipe [options] [command]')
    expect(r.stdout).toBe('')
  })

  it('manifest without its entry exits 2 naming the missing argument', async () => {
    const r = await npx(['onepipe', 'manifest'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("error: missing required argument 'entry'")
    expect(r.stderr).toContain('Usage: onepipe manifest')
  })

  it('a port that is not a number exits 2 naming --port, in both bins (one definition)', async () => {
    const [alone, sub] = await Promise.all([npx(['onepipe-streams', 'serve', '--port', 'x']), npx(['onepipe', 'streams', 'serve', '--port', 'x'])])
    for (const r of [alone, sub]) {
      expect(r.code).toBe(2)
      expect(r.stderr).toContain("option '--port <n>' argument 'x' is invalid")
      expect(r.stdout).not.toContain('listening')
    }
  })

  it('migrate refuses --dir together with an entry (exit 2) rather than ignoring it', async () => {
    const r = await npx(['onepipe', 'migrate', app, '--dir', 'sql'], { DATABASE_URL: undefined, ONEPIPE_DATA_DIR: empty })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('--dir and --source apply only without an entry')
    expect(await readdir(empty)).toEqual([])
  })
})

describe('bins in a fresh clone', () => {
  it('each "bin" is a file git tracks, executable and shipped in "files" (npm links it before dist/ is built)', () => {
    for (const pkg of ['cli', 'streams']) {
      const json = JSON.parse(readFileSync(join(root, 'packages', pkg, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] }
      const bins = Object.values(json.bin)
      expect(bins.length).toBeGreaterThan(0)
      for (const bin of bins) {
        const path = join('packages', pkg, bin)
        expect(bin).not.toMatch(/dist\//)
        expect(json.files).toContain(bin.replace(/^\.\//, '').split('/')[0])
        const staged = execFileSync('git', ['ls-files', '--stage', '--', path], { cwd: root, encoding: 'utf8' })
        expect(staged, `${path} must be committed`).toMatch(/^100755 /)
      }
    }
  })
})

describe('onepipe migrate <entry> on the embedded database', () => {
  let dir = ''
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'onepipe-cli-migrate-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const env = () => ({ DATABASE_URL: undefined, ONEPIPE_DB_SCHEMA: undefined, ONEPIPE_DATA_DIR: dir })

  // Two npx runs that each start PGlite and migrate: about 30 s on a loaded 2-core machine, the default limit.
  it("applies OnePipe's migrations, the app's folder and its inline migration, then nothing on a second run", { timeout: 120_000 }, async () => {
    const first = await npx(['onepipe', 'migrate', app], env())
    expect(first.stderr).not.toMatch(/onepipe:/)
    expect(first.code).toBe(0)
    const [r1] = migrationLines(first)
    expect(r1?.database).toBe('widgets')
    expect(r1?.applied).toContain('onepipe:1')
    expect(r1?.applied.slice(-2)).toEqual(['app:1', 'app:2'])
    expect(r1?.alreadyApplied).toBe(0)

    const second = await npx(['onepipe', 'migrate', app], env())
    expect(second.code).toBe(0)
    expect(migrationLines(second)).toEqual([{ database: 'widgets', applied: [], alreadyApplied: r1?.applied.length }])

    const look = Database.create('look').pglite(join(dir, 'db')).autoMigrate(false).build()
    try {
      const cols = await look.query<{ column_name: string }>("SELECT column_name FROM information_schema.columns WHERE table_name = 'widgets' ORDER BY ordinal_position")
      expect(cols.map((c) => c.column_name)).toEqual(['id', 'name', 'note'])
    } finally {
      await look.close()
    }
  })

  it('fails with one line DB_DIR_LOCKED (exit 1) while another process holds the folder', async () => {
    const held = await mkdtemp(join(tmpdir(), 'onepipe-cli-locked-'))
    const lock = await lockDirectory(join(held, 'db'), { code: 'DB_DIR_LOCKED', what: 'embedded database', hint: 'test' })
    try {
      const r = await npx(['onepipe', 'migrate'], { DATABASE_URL: undefined, ONEPIPE_DATA_DIR: held })
      expect(r.code).toBe(1)
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('onepipe:'))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^onepipe: DB_DIR_LOCKED: The embedded database in .* is in use by process \d+/)
      expect(r.stdout).toBe('')
    } finally {
      await lock.release()
      await rm(held, { recursive: true, force: true })
    }
  })
})
