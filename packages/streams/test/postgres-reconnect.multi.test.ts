import { afterAll, beforeAll, describe } from 'vitest'
import type { Database } from '@onepipe/core'
import { postgresUrl, testDatabase } from '@onepipe/testing'
import { terminateListeners } from '../../core/test/gap-proxy.js'
import { lostNoticeTests } from './lost-notices.js'

describe('PostgreSQL store: live reads survive a lost LISTEN connection', () => {
  let db: Database
  let schema = ''
  let cleanup: (() => Promise<void>) | undefined
  beforeAll(async () => {
    const made = await testDatabase()
    ;({ db, schema } = made)
    cleanup = made.cleanup
  })
  afterAll(async () => {
    await cleanup?.()
  })
  lostNoticeTests({
    kind: 'postgres',
    namespace: () => schema,
    url: () => postgresUrl(),
    env: (url) => ({ DATABASE_URL: url }),
    kill: (server) => terminateListeners(db, server.pid),
  })
})
