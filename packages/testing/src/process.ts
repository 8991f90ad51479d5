import { spawn, type ChildProcess } from 'node:child_process'

/** A real child process started by {@link spawnNode} or {@link spawnCommand}. */
export interface NodeProcess {
  child: ChildProcess
  pid: number
  /** Everything printed so far (stdout and stderr). */
  output(): string
  /** Resolves when a line matching `re` has been printed; rejects on exit or timeout. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>
  kill(signal?: NodeJS.Signals): void
}

/**
 * Starts `node file args…` with extra env (an `undefined` value unsets a
 * variable) in `options.cwd`, capturing its output, for multi-process and
 * crash tests.
 *
 * @example
 * ```ts
 * const p = spawnNode('test/fixtures/app.js', [], { PORT: '0' })
 * await p.waitFor(/listening/)
 * p.kill('SIGKILL')
 * ```
 */
export function spawnNode(file: string, args: string[] = [], env: Record<string, string | undefined> = {}, options: { cwd?: string } = {}): NodeProcess {
  return spawnCommand(process.execPath, [file, ...args], env, options)
}

/**
 * Starts any program (no shell; found on `PATH`) like {@link spawnNode}:
 * same env rules, same captured output. `pid` is the program's own, so a
 * test can signal it exactly as an operator would (`kill -TERM` of `npm`).
 *
 * @example
 * ```ts
 * const npm = spawnCommand('npm', ['start'], { PORT: '0', DATABASE_URL: undefined }, { cwd: repoRoot })
 * await npm.waitFor(/listening/)
 * npm.kill('SIGTERM')
 * expect(await npm.exited).toBe(0)
 * ```
 */
export function spawnCommand(command: string, args: string[] = [], env: Record<string, string | undefined> = {}, options: { cwd?: string } = {}): NodeProcess {
  const merged: NodeJS.ProcessEnv = { ...process.env }
  // An undefined value removes the variable, e.g. { DATABASE_URL: undefined } for the embedded default.
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete merged[k]
    else merged[k] = v
  }
  const child = spawn(command, args, { env: merged, stdio: ['ignore', 'pipe', 'pipe'], ...(options.cwd ? { cwd: options.cwd } : {}) })
  let out = ''
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = []
  const onData = (d: Buffer) => {
    out += d.toString()
    for (const w of [...waiters]) {
      const m = w.re.exec(out)
      if (m) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(m[0])
      }
    }
  }
  child.stdout?.on('data', onData)
  child.stderr?.on('data', onData)
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, sig) => resolve(code ?? sig ?? -1))
    // A program that could not start (not on PATH) never exits: report it as its end.
    child.on('error', (err) => {
      out += `\n${err.message}\n`
      if (child.pid === undefined) resolve(err.message)
    })
  })
  return {
    child,
    pid: child.pid ?? -1,
    output: () => out,
    exited,
    kill: (s = 'SIGTERM') => {
      child.kill(s)
    },
    waitFor(re, timeoutMs = 60_000) {
      const m = re.exec(out)
      if (m) return Promise.resolve(m[0])
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} in output:\n${out.slice(-2000)}`)), timeoutMs)
        const w = {
          re,
          resolve: (l: string) => {
            clearTimeout(t)
            resolve(l)
          },
        }
        waiters.push(w)
        void exited.then((code) => {
          if (waiters.includes(w)) {
            clearTimeout(t)
            waiters.splice(waiters.indexOf(w), 1)
            reject(new Error(`process exited (${code}) before printing ${re}:\n${out.slice(-2000)}`))
          }
        })
      })
    },
  }
}
