import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Database } from '@onepipe/core'
import { postgresUrl, requireService, uniqueName } from '@onepipe/testing'
import { migrationLines, npx } from './npx.js'

const app = fileURLToPath(new URL('./fixtures/app/main.js', import.meta.url))

// PostgreSQL only: the embedded default is covered in cli.test.ts, which
// embedded-backend runs (no server) still include.
describe('onepipe migrate <entry> on PostgreSQL', () => {
  const schema = uniqueName('cli_migrate')
  const url = postgresUrl()
  let look: Database | undefined
  beforeAll(async () => {
    await requireService('postgres')
    look = Database.create('look').postgres(url).autoMigrate(false).build()
  })
  afterAll(async () => {
    await look?.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await look?.close()
  })

  it("applies OnePipe's migrations, the app's folder and inline migration in a fresh schema, then nothing on a second run", async () => {
    const env = { DATABASE_URL: url, ONEPIPE_DB_SCHEMA: schema }
    const first = await npx(['onepipe', 'migrate', app], env)
    expect(first.stderr).not.toMatch(/onepipe:/)
    expect(first.code).toBe(0)
    const [r1] = migrationLines(first)
    expect(r1?.database).toBe('widgets')
    expect(r1?.applied).toContain('onepipe:1')
    expect(r1?.applied.slice(-2)).toEqual(['app:1', 'app:2'])
    expect(r1?.alreadyApplied).toBe(0)

    const cols = await look!.query<{ column_name: string }>(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'widgets' ORDER BY ordinal_position",
      [schema],
    )
    expect(cols.map((c) => c.column_name)).toEqual(['id', 'name', 'note'])

    const second = await npx(['onepipe', 'migrate', app], env)
    expect(second.code).toBe(0)
    expect(migrationLines(second)).toEqual([{ database: 'widgets', applied: [], alreadyApplied: r1?.applied.length }])
  })
})
