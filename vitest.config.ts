import { defineConfig } from 'vitest/config'

// ONEPIPE_TEST_BACKEND=embedded runs the suite on PGlite + memory. Tests
// about several processes sharing one PostgreSQL (*.multi.test.ts) need a
// server by definition, so only the real-backend run includes them.
const embedded = process.env.ONEPIPE_TEST_BACKEND === 'embedded'

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**', ...(embedded ? ['**/*.multi.test.ts', '**/*.real.test.ts'] : [])],
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
