#!/usr/bin/env node
// Runs one benchmark area: `node bench/run.mjs <area>` (or `npm run bench -- <area>`).
// The peers OnePipe is measured beside (DBOS, the Durable Streams reference
// server, autocannon, …) live in bench/package.json and are installed here on
// first use, so a user's `npm install` of OnePipe never downloads them.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const areas = readdirSync(here, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(here, d.name, 'run.mjs')))
  .map((d) => d.name)
  .sort()
const [area, ...rest] = process.argv.slice(2)
if (!area || area === '--help' || area === '-h' || !areas.includes(area)) {
  const out = area && area !== '--help' && area !== '-h' ? process.stderr : process.stdout
  out.write(`Usage: node bench/run.mjs <area> [args]\n\nAreas: ${areas.join(', ')}\n`)
  process.exit(area === '--help' || area === '-h' ? 0 : 2)
}
const peers = Object.keys(JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies ?? {})
if (peers.some((p) => !existsSync(join(here, 'node_modules', p, 'package.json')))) {
  process.stdout.write('bench: installing the peers in bench/package.json (once)\n')
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  execFileSync(npm, ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: here, stdio: 'inherit' })
}
const r = spawnSync(process.execPath, [join(here, area, 'run.mjs'), ...rest], { stdio: 'inherit' })
process.exit(r.status ?? 1)
