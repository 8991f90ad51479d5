import { existsSync, readFileSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { ConfigError } from '@onepipe/core'
import type { Command } from '@onepipe/streams/cli'
import { startDev } from './supervisor.js'

export { startDev, listeningUrl, type DevOptions, type DevSession } from './supervisor.js'

/** Longest wait for the app to stop on a change: the Lifecycle's default shutdown budget (30 s) plus 5 s. */
const STOP_TIMEOUT_MS = 35_000

/** The entry `onepipe dev` runs: the one given, else src/main.ts, src/index.ts, or package.json's main. */
export function devEntry(given: string | undefined, root: string): string {
  if (given !== undefined) {
    const file = resolve(root, given)
    if (!existsSync(file) || statSync(file).isDirectory()) throw new ConfigError('ENTRY_NOT_FOUND', `No app entry file at ${file}; pass the app's entry file, e.g. src/main.ts`)
    return given
  }
  for (const f of ['src/main.ts', 'src/index.ts', 'main.ts']) if (existsSync(resolve(root, f))) return f
  const pkg = resolve(root, 'package.json')
  if (existsSync(pkg)) {
    const main = (JSON.parse(readFileSync(pkg, 'utf8')) as { main?: unknown }).main
    if (typeof main === 'string' && existsSync(resolve(root, main))) return main
  }
  throw new ConfigError('ENTRY_NOT_FOUND', `No app entry found in ${root} (looked for src/main.ts, src/index.ts, main.ts and package.json's main); pass it: onepipe dev src/main.ts`)
}

/**
 * Adds `onepipe dev [entry]`: runs the app (TypeScript through tsx, no
 * build step) on the embedded default unless DATABASE_URL says otherwise,
 * restarts it gracefully on every source change, and keeps its data (the
 * embedded database lives in `.onepipe/`, which is not watched).
 *
 * @example
 * ```ts
 * addDevCommand(program) // onepipe dev src/main.ts
 * ```
 */
export function addDevCommand(program: Command): void {
  program
    .command('dev')
    .description('run the app and restart it when its sources change (graceful: SIGTERM, wait, start); data is kept')
    .argument('[entry]', "the app's entry, TypeScript or JavaScript (default: src/main.ts, src/index.ts, main.ts or package.json's main)")
    .addHelpText(
      'after',
      `
The app runs with the environment of this shell: without DATABASE_URL it uses the
embedded database in .onepipe/ (kept across restarts). Changes under the current
folder restart it, except in node_modules, dist, .onepipe and .git.

Examples:
  onepipe dev
  PORT=4000 onepipe dev src/main.ts`,
    )
    .action(async (entry: string | undefined) => {
      const root = process.cwd()
      const file = devEntry(entry, root)
      const say = (line: string) => process.stderr.write(`${line}\n`)
      say(`onepipe dev: ${file} on ${process.env.DATABASE_URL ? 'PostgreSQL (DATABASE_URL)' : `the embedded database in ${resolve(process.env.ONEPIPE_DATA_DIR ?? '.onepipe')}`}`)
      const session = startDev({ entry: file, root, loader: import.meta.resolve('tsx'), stopTimeoutMs: STOP_TIMEOUT_MS, env: {}, say })
      // Ends with the terminal: Ctrl-C stops the app gracefully first.
      await new Promise<void>((done) => {
        const end = () => void session.stop().then(done, done)
        process.once('SIGINT', end)
        process.once('SIGTERM', end)
        process.once('SIGHUP', end)
      })
    })
}
