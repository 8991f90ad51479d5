import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The repository root, where a user types `npx onepipe …`. */
export const root = fileURLToPath(new URL('../../../', import.meta.url))

export interface Run {
  code: number | string
  stdout: string
  stderr: string
}

/**
 * Runs `npx <args>` from the repository root, as a user would. npx is kept
 * off the network (offline, never install): a bin that is not linked fails
 * here instead of being fetched from the registry under the same name.
 * An env value of undefined removes that variable.
 */
export function npx(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const merged: Record<string, string | undefined> = { ...process.env, npm_config_yes: 'false', npm_config_offline: 'true', ...env }
  for (const k of Object.keys(merged)) if (merged[k] === undefined) delete merged[k]
  const child = spawn('npx', args, { cwd: root, env: merged, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code: code ?? signal ?? -1, stdout, stderr }))
  })
}

/** The JSON lines `onepipe migrate` printed. */
export function migrationLines(r: Run): { database: string; applied: string[]; alreadyApplied: number }[] {
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { database: string; applied: string[]; alreadyApplied: number })
}
