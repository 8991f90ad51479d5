import { afterAll, beforeAll, describe } from 'vitest'
import { postgresUrl, testDatabase } from '@onepipe/testing'
import { sharedServerTests } from './shared-servers.js'

describe('PostgreSQL store: several server processes serve one set of streams', () => {
  let schema = ''
  let cleanup: (() => Promise<void>) | undefined
  beforeAll(async () => {
    const made = await testDatabase()
    schema = made.schema
    cleanup = made.cleanup
    // Migrate once here, so the three processes start on a ready schema.
    await made.db.ready()
  })
  afterAll(async () => {
    await cleanup?.()
  })
  sharedServerTests('postgres', () => schema, () => ({ DATABASE_URL: postgresUrl() }))
})
