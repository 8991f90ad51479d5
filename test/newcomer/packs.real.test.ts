import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Database } from '@onepipe/core'
import { postgresUrl, requireService, uniqueName, type NodeProcess } from '@onepipe/testing'
import { exerciseExample, ROOT, startExample } from './readme.js'

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

// Until OnePipe is on the registry, `npm run pack` is how an app outside this
// repository gets it. This is that app: a folder in the system temp dir that
// installs only the packs (and zod, which the example imports).
describe('the packs install into an app outside the repository and run the README example', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onepipe-app-'))
  const procs: NodeProcess[] = []
  const schema = uniqueName('packs')
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    rmSync(dir, { recursive: true, force: true })
    const admin = Database.create('admin').postgres(postgresUrl()).autoMigrate(false).build()
    await admin.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await admin.close()
  })

  it('npm run pack prints one install command; that command and the example work on the embedded default and on PostgreSQL', { timeout: 240_000 }, async () => {
    await requireService('postgres')
    const packs = join(dir, 'packs')
    const cmd = execFileSync(npm, ['run', '--silent', 'pack', '--', '--out', packs, '--quiet'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const tarballs = readdirSync(packs).filter((f) => f.endsWith('.tgz')).map((f) => join(packs, f)).sort()
    expect(tarballs.map((t) => t.replace(/.*\//, '')).sort()).toEqual(['onepipe-cli-0.1.0.tgz', 'onepipe-core-0.1.0.tgz', 'onepipe-dashboard-0.1.0.tgz', 'onepipe-pipelines-0.1.0.tgz', 'onepipe-runtime-0.1.0.tgz', 'onepipe-sdk-0.1.0.tgz', 'onepipe-streams-0.1.0.tgz', 'onepipe-testing-0.1.0.tgz', 'onepipe-worker-0.1.0.tgz'])
    expect(cmd.startsWith('npm install ')).toBe(true)
    expect(cmd.slice('npm install '.length).split(' ').sort()).toEqual(tarballs)

    const app = join(dir, 'app')
    execFileSync('mkdir', ['-p', app])
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'outside-app', private: true, type: 'module' }))
    const zod = (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'zod', 'package.json'), 'utf8')) as { version: string }).version
    execFileSync(npm, ['install', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs, `zod@${zod}`], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'] })
    // Nothing may resolve to the repository's own node_modules.
    expect(app.startsWith(ROOT)).toBe(false)

    const embedded = await startExample(app, { PORT: '0', DATABASE_URL: undefined, REDIS_URL: undefined, ONEPIPE_DB_SCHEMA: undefined, ONEPIPE_DATA_DIR: join(app, '.onepipe'), NODE_PATH: undefined })
    procs.push(embedded.p)
    await exerciseExample(embedded.url)
    // The dashboard's build came with the packs (the README example is REST only, so it serves no dashboard itself).
    expect(readFileSync(join(app, 'node_modules', '@onepipe', 'dashboard', 'dist', 'index.html'), 'utf8')).toContain('/__onepipe/dashboard/assets/')
    embedded.p.kill('SIGTERM')
    expect(await embedded.p.exited).toBe(0)

    const pg = await startExample(app, { PORT: '0', DATABASE_URL: postgresUrl(), ONEPIPE_DB_SCHEMA: schema, NODE_PATH: undefined })
    procs.push(pg.p)
    await exerciseExample(pg.url)
    pg.p.kill('SIGTERM')
    expect(await pg.p.exited).toBe(0)

    // The bins came with the packs.
    const help = execFileSync('npx', ['--no-install', 'onepipe', '--help'], { cwd: app, encoding: 'utf8' })
    expect(help).toContain('migrate')
  })
})
