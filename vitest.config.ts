import { defineConfig } from 'vitest/config'

// ONEPIPE_TEST_BACKEND=embedded runs the suite on PGlite + memory. Tests
// about several processes sharing one PostgreSQL (*.multi.test.ts) need a
// server by definition, so only the real-backend run includes them.
const embedded = process.env.ONEPIPE_TEST_BACKEND === 'embedded'

// Files that never read ONEPIPE_TEST_BACKEND: each sets its own environment
// (the embedded default in a scratch folder, or no database at all), so both
// runs would execute exactly the same code. They run once, in the real-backend
// run, which keeps CI inside its budget. A file that starts choosing its
// backend through @onepipe/testing belongs in both runs again.
const sameOnEveryBackend = [
  'packages/cli/test/cli.test.ts',
  'packages/cli/test/deploy.test.ts',
  'packages/cli/test/dev.test.ts',
  'packages/cli/test/ops.test.ts',
  'packages/core/test/embedded-lock.test.ts',
  'packages/runtime/test/secure-default.test.ts',
  'packages/sdk/test/embedded/takeover.test.ts',
  'packages/streams/test/conformance.test.ts',
  'examples/shop/test/start.test.ts',
  'examples/pipelineos/test/pricing.test.ts',
  'examples/pipelineos/test/parts.test.ts',
]

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**', ...(embedded ? ['**/*.multi.test.ts', '**/*.real.test.ts', ...sameOnEveryBackend] : [])],
    setupFiles: ['./test/setup/leaks.ts'],
    // Limits only bound how long a broken test hangs. On a loaded 2-core CI
    // machine, starting PGlite on a folder or a child process takes seconds,
    // and honest tests that do that a few times came within a second of 30 s.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
})
