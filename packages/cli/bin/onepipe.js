#!/usr/bin/env node
// npm links a workspace's bins during `npm install`, before `prepare` builds
// dist/. A bin pointing into dist/ is skipped in a fresh clone, so npx finds
// no executable; this committed file always exists and loads the build late.
import { existsSync } from 'node:fs'

const built = new URL('../dist/bin.js', import.meta.url)
if (!existsSync(built)) {
  process.stderr.write('onepipe: the CLI is not built yet (no packages/cli/dist); run npm run build first\n')
  process.exit(1)
}
await import(built.href)
