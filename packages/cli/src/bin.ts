#!/usr/bin/env node
import { Database, OnePipeError } from '@onepipe/core'
import { readManifest } from './manifest.js'

const USAGE = `Usage: onepipe <command>

Commands:
  manifest <entry.js>   Print the app's manifest (every built primitive) as JSON, starting nothing
  migrate               Apply pending migrations to DATABASE_URL (or the embedded database)
  help                  Show this text`

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  switch (cmd) {
    case 'manifest': {
      const entry = rest[0]
      if (!entry) {
        process.stderr.write('onepipe manifest needs the app entry file, e.g. onepipe manifest dist/main.js\n')
        return 2
      }
      const m = await readManifest(entry)
      process.stdout.write(JSON.stringify(m, null, 2) + '\n')
      return 0
    }
    case 'migrate': {
      const db = Database.fromEnv()
      const r = await db.ready()
      await db.close()
      process.stdout.write(JSON.stringify({ applied: r.applied, alreadyApplied: r.alreadyApplied.length }) + '\n')
      return 0
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n')
      return cmd === undefined ? 2 : 0
    default:
      process.stderr.write(`Unknown command "${cmd}".\n${USAGE}\n`)
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const msg = e instanceof OnePipeError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e)
    process.stderr.write(`onepipe: ${msg}\n`)
    process.exit(1)
  },
)
