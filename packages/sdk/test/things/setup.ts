// One database per test file (a fresh schema), shared by the Things tests.
import { afterAll, beforeAll } from 'vitest'
import type { Database } from '@onepipe/sdk'
import { testDatabase } from '@onepipe/testing'

/** Registers the file's database hooks; call the returned function inside tests for the database and its URL. */
export function useDatabase(): () => { db: Database; schema: string; url: string | undefined } {
  let t: Awaited<ReturnType<typeof testDatabase>> | undefined
  beforeAll(async () => {
    t = await testDatabase()
  })
  afterAll(async () => {
    await t?.cleanup()
  })
  return () => {
    if (!t) throw new Error('the test database is not ready')
    return t
  }
}
