#!/usr/bin/env node
// `npm run pack [-- --out <dir>]`: builds every package and packs each public
// one into <dir> (default ./packs), then prints the one command that installs
// them all into another app. Until OnePipe is on the registry, this is how an
// app outside this repository uses it: the packs depend on each other by
// version range, so they must be installed together.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { out: { type: 'string', default: 'packs' }, quiet: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } })
if (values.help) {
  process.stdout.write('Usage: npm run pack [-- --out <dir>] [--quiet]\n\nPacks every public @onepipe/* package into <dir> (default ./packs) and prints the npm install command for them.\n')
  process.exit(0)
}
const root = resolve(import.meta.dirname, '..')
const out = resolve(values.out)
mkdirSync(out, { recursive: true })
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const log = (s) => values.quiet || process.stderr.write(s + '\n')

log('building…')
execFileSync(npm, ['run', 'build', '--silent'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })

const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const tarballs = []
for (const ws of rootPkg.workspaces) {
  const pkg = JSON.parse(readFileSync(join(root, ws, 'package.json'), 'utf8'))
  if (pkg.private) continue
  const [info] = JSON.parse(execFileSync(npm, ['pack', '--json', '--pack-destination', out], { cwd: join(root, ws), encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }))
  tarballs.push(join(out, info.filename))
  log(`packed ${pkg.name}@${pkg.version} (${info.entryCount} files, ${Math.round(info.size / 1024)} KiB)`)
}
process.stdout.write(`npm install ${tarballs.join(' ')}\n`)
