/**
 * Runs the public Durable Streams conformance suite
 * (`@durable-streams/server-conformance-tests`) against an UnbrokenServer
 * over one store. Each store's conformance file is one line:
 *
 * ```ts
 * runConformance('file', async () => ({ store: new FileStreamStore({ dir }), cleanup }))
 * ```
 */
import { afterAll, beforeAll, describe } from 'vitest'
import { runConformanceTests } from '@durable-streams/server-conformance-tests'
import { UnbrokenServer } from '../../src/index.js'
import type { StreamStore } from '../../src/index.js'

/**
 * Long-poll timeout the suite runs with. Its 204-timeout tests wait this long,
 * but its other long-poll tests must append (after their own 50-500 ms
 * pauses) before it runs out, and it gives each long-poll test this plus
 * 1 s: 200 ms made them fail by the clock on a loaded machine.
 */
export const CONFORMANCE_LONG_POLL_MS = 2000

export function runConformance(name: string, makeStore: () => Promise<{ store: StreamStore; cleanup?: () => Promise<void> }>): void {
  describe(`Durable Streams conformance: ${name} store`, () => {
    // The suite reads baseUrl when each test runs, so it can be filled in beforeAll.
    // `subscriptions: true` also runs the reserved subscription API tests the default run skips.
    const options = { baseUrl: '', longPollTimeoutMs: CONFORMANCE_LONG_POLL_MS, subscriptions: true }
    let server: UnbrokenServer | undefined
    let cleanup: (() => Promise<void>) | undefined

    beforeAll(async () => {
      const made = await makeStore()
      cleanup = made.cleanup
      server = new UnbrokenServer({ store: made.store, port: 0, longPollTimeoutMs: CONFORMANCE_LONG_POLL_MS, sseLifetimeMs: 10_000, sweepIntervalMs: 250 })
      options.baseUrl = (await server.start()).url
    })

    afterAll(async () => {
      await server?.stop()
      await cleanup?.()
    })

    runConformanceTests(options)
  })
}
