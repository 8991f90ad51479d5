// Shared by the bench servers: a scratch data directory, the PORT=<n>
// line bench/lib/report.mjs waits for, and a clean stop on SIGTERM (which
// removes the directory, when there is one).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function scratchDir(name) {
  return mkdtempSync(join(tmpdir(), `bench-${name}-`))
}

export function announce(port, dir, stop) {
  process.stdout.write(`PORT=${port}\n`)
  process.on('SIGTERM', () => {
    stop().then(
      () => {
        if (dir) rmSync(dir, { recursive: true, force: true })
        process.exit(0)
      },
      (err) => {
        console.error(err)
        process.exit(1)
      },
    )
  })
}
