import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { inBatches, onepipe } from './fixtures/ops-cli/run.js'

// Usage, production guards and the embedded default: no PostgreSQL needed, so
// these run in the embedded suite too (ops.real.test.ts covers PostgreSQL).

const COMMANDS = [
  ['migrate', 'up'],
  ['migrate', 'status'],
  ['db', 'reset'],
  ['users', 'create'],
  ['keys', 'create'],
  ['flows', 'list'],
  ['flows', 'tail'],
  ['workflows', 'list'],
  ['workflows', 'show'],
  ['workflows', 'cancel'],
  ['cron', 'list'],
  ['cron', 'trigger'],
]

/** Each command run as it would hit the database: arguments and mandatory options given. */
const SHOP = join(import.meta.dirname, '../../../examples/shop/dist/main.js')
/** Every way to migrate, with and without an entry: none may fall back to an embedded database in production. */
const MIGRATE_RUNS = [['migrate'], ['migrate', SHOP], ['migrate', 'up', SHOP], ['migrate', 'status', SHOP]]
const DATABASE_RUNS = [
  ['migrate', 'up'],
  ['migrate', 'status'],
  ['users', 'create', '--email', 'ada@example.com', '--role', 'admin'],
  ['keys', 'create', '--app', 'billing'],
  ['flows', 'list'],
  ['flows', 'tail', 'orders'],
  ['workflows', 'list'],
  ['workflows', 'show', 'run-1'],
  ['workflows', 'cancel', 'run-1'],
  ['cron', 'list'],
  ['cron', 'trigger', 'nightly'],
]

const sql = fileURLToPath(new URL('./fixtures/ops-sql', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'onepipe-ops-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

describe('onepipe operator commands: usage', () => {
  it('answers --help on every command with its usage, exit 0', async () => {
    const runs = await inBatches(COMMANDS, 3, (c) => onepipe([...c, '--help']))
    runs.forEach((r, i) => {
      expect(r.code, COMMANDS[i]?.join(' ')).toBe(0)
      expect(r.stdout).toContain(`Usage: onepipe ${COMMANDS[i]?.join(' ')}`)
      expect(r.stdout).toMatch(/Examples:/)
    })
    const groups = await inBatches(['db', 'users', 'keys', 'flows', 'workflows', 'cron'], 3, (g) => onepipe([g, '--help']))
    for (const r of groups) expect(r.code).toBe(0)
  })

  it('exits 2 with the usage on an unknown option, a bad choice or a missing argument', async () => {
    // Complete otherwise, so the unknown option is the one thing wrong.
    const complete = [...DATABASE_RUNS, ['db', 'reset', '--force']]
    const runs = await inBatches(complete, 3, (c) => onepipe([...c, '--bogus']))
    runs.forEach((r, i) => {
      expect(r.code, complete[i]?.join(' ')).toBe(2)
      expect(r.stderr).toContain("unknown option '--bogus'")
      expect(r.stderr).toContain(`Usage: onepipe ${complete[i]?.slice(0, 2).join(' ')}`)
    })
    const bad = await inBatches(
      [
        ['users', 'create', '--email', 'a@example.com', '--role', 'root'],
        ['users', 'create', '--role', 'admin'],
        ['keys', 'create'],
        ['workflows', 'list', '--status', 'sleeping'],
        ['workflows', 'list', '--limit', 'many'],
        ['flows', 'tail'],
        ['flows', 'tail', 'orders', '--from', '-1'],
        ['cron', 'trigger', 'x', '--wait', 'soon'],
        ['migrate', 'status', 'dist/main.js', '--dir', 'sql'],
      ],
      3,
      (a) => onepipe(a),
    )
    for (const r of bad) {
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/^error: /m)
      expect(r.stderr).toContain('Usage: onepipe ')
    }
  })

  it('refuses db reset without --force: exit 2 and what --force means', async () => {
    const r = await onepipe(['db', 'reset'], { ONEPIPE_DATA_DIR: join(scratch, 'untouched') })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('add --force to confirm')
    expect(r.stderr).toContain('Usage: onepipe db reset')
  })
})

describe('onepipe operator commands with NODE_ENV=production', () => {
  it('refuses the embedded database: DATABASE_URL_REQUIRED on one line, exit 1, nothing created', async () => {
    const dataDir = join(scratch, 'prod')
    const env = { NODE_ENV: 'production', ONEPIPE_DATA_DIR: dataDir, ONEPIPE_AUTH_SECRET: 'x'.repeat(48) }
    const all = [...DATABASE_RUNS, ...MIGRATE_RUNS]
    const runs = await inBatches(all, 3, (a) => onepipe(a, env, { cwd: scratch }))
    runs.forEach((r, i) => {
      expect(r.code, all[i]?.join(' ')).toBe(1)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(r.stderr).toMatch(/^onepipe: DATABASE_URL_REQUIRED: NODE_ENV=production and DATABASE_URL is not set/)
    })
    expect(existsSync(dataDir)).toBe(false)
  })

  it('refuses db reset even with --force: DB_RESET_IN_PRODUCTION, exit 1', async () => {
    const r = await onepipe(['db', 'reset', '--force'], { NODE_ENV: 'production', DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^onepipe: DB_RESET_IN_PRODUCTION: /)
    const noForce = await onepipe(['db', 'reset'], { NODE_ENV: 'production' })
    expect(noForce.code).toBe(1)
    expect(noForce.stderr).toMatch(/DB_RESET_IN_PRODUCTION/)
  })
})

describe('onepipe operator commands on the embedded default', () => {
  it('migrate status shows pending, up applies (flags after the subcommand too), status shows applied; db reset --force deletes the folder', async () => {
    const dataDir = join(scratch, 'embedded')
    const env = { ONEPIPE_DATA_DIR: dataDir }
    const before = await onepipe(['migrate', 'status', '--dir', sql, '--source', 'ops', '--json'], env, { cwd: scratch })
    expect(before.stderr).toBe('')
    const s1 = JSON.parse(before.stdout) as { databases: { sources: { source: string; applied: number; pending: number }[] }[] }
    const src1 = s1.databases[0]?.sources ?? []
    expect(src1.map((s) => s.source)).toEqual(['onepipe', 'ops'])
    expect(src1.every((s) => s.applied === 0 && s.pending > 0)).toBe(true)

    const up = await onepipe(['migrate', 'up', '--dir', sql, '--source', 'ops'], env, { cwd: scratch })
    expect(up.code).toBe(0)
    const line = JSON.parse(up.stdout.trim()) as { applied: string[] }
    expect(line.applied.at(-1)).toBe('ops:1')

    const after = await onepipe(['migrate', 'status', '--dir', sql, '--source', 'ops'], env, { cwd: scratch })
    expect(after.code).toBe(0)
    expect(after.stdout).toMatch(/^ops\s+1\s+0\s+000001_notes$/m)
    expect(after.stdout).not.toMatch(/pending:/)

    const reset = await onepipe(['db', 'reset', '--force'], env, { cwd: scratch })
    expect(reset.code).toBe(0)
    expect(reset.stdout).toContain(`deleted the embedded database folder ${dataDir}`)
    expect(existsSync(dataDir)).toBe(false)
  })

  it('explains a database without OnePipe tables and refuses to delete a folder that is not a data folder', async () => {
    const env = { ONEPIPE_DATA_DIR: join(scratch, 'fresh') }
    // A folder that is not there is named, and not created by looking.
    const r = await onepipe(['cron', 'list'], env, { cwd: scratch })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^onepipe: DB_NOT_FOUND: No embedded database in \S+fresh/)
    expect(existsSync(join(scratch, 'fresh'))).toBe(false)
    // A database without OnePipe's tables says where it looked and what to run.
    mkdirSync(join(scratch, 'bare', 'db'), { recursive: true })
    const bare = await onepipe(['cron', 'list'], { ONEPIPE_DATA_DIR: join(scratch, 'bare') }, { cwd: scratch })
    expect(bare.code).toBe(1)
    expect(bare.stderr).toMatch(/^onepipe: DB_NOT_MIGRATED: The embedded database in \S+bare.*run onepipe migrate up/)
    const unsafe = await onepipe(['db', 'reset', '--force'], { ONEPIPE_DATA_DIR: sql }, { cwd: scratch })
    expect(unsafe.code).toBe(1)
    expect(unsafe.stderr).toMatch(/^onepipe: DB_RESET_UNSAFE: /)
    expect(existsSync(join(sql, '000001_notes.sql'))).toBe(true)
  })
})
