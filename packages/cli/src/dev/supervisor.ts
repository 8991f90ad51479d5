// The process `onepipe dev` keeps running: the app as a child process,
// started again when its sources change while the previous run stops
// gracefully. Two runs overlap only while the next one loads: the embedded
// database's folder lock and the port admit one process, and the next run
// waits for the previous one to let them go (its data intact).
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { watch, type FSWatcher } from 'chokidar'

/** How a dev session runs. */
export interface DevOptions {
  /** The app's entry, TypeScript or JavaScript (run through tsx). */
  entry: string
  /** The folder watched for changes (default: the current one). */
  root: string
  /** `--import` value that makes Node run TypeScript (tsx's loader URL). */
  loader: string
  /** Longest wait for a stopping app before SIGKILL, in ms (its shutdown budget plus a margin). */
  stopTimeoutMs: number
  /** Extra environment for the app. */
  env: NodeJS.ProcessEnv
  /** Where the session's own lines go (default stderr). */
  say: (line: string) => void
}

/** What is never watched: dependencies, build output, OnePipe's data folder, version control. */
export const IGNORED = /(^|[\\/])(node_modules|dist|build|coverage|\.onepipe|\.git|\.turbo)([\\/]|$)/
/** The files whose change restarts the app: code, JSON, SQL migrations, env files (not an editor's temp and swap files). */
export const SOURCE = /(\.(ts|tsx|mts|cts|js|jsx|mjs|cjs|json|sql)|(^|[\\/])\.env(\.[\w.-]+)?)$/

/** A running `onepipe dev`: `stop()` ends the app and the watch. */
export interface DevSession {
  /** Resolves when the app answered its first start (its listening line) or exited. */
  readonly started: Promise<void>
  /** How many times the app was started. */
  readonly starts: number
  stop(): Promise<void>
}

/**
 * Runs the app and restarts it on every change of a source file under
 * `root`: the next run starts at once and loads its code while the previous
 * one gets SIGTERM (it drains its requests and runs its shutdown hooks;
 * SIGKILL after `stopTimeoutMs`); the next run takes the embedded database
 * and the port once they are let go. One restart per burst of saves. The
 * app's output passes through; its "OnePipe app listening" line is echoed
 * with the app's URLs.
 *
 * @example
 * ```ts
 * const s = startDev({ entry: 'src/main.ts', root: '.', loader, stopTimeoutMs: 35_000, env: {}, say: console.error })
 * await s.started
 * ```
 */
export function startDev(o: DevOptions): DevSession {
  const kids = new Set<Kid>()
  let stopped = false
  let starts = 0
  let firstStart!: () => void
  const started = new Promise<void>((r) => (firstStart = r))

  const run = (afterPrevious: boolean): void => {
    starts++
    const c = spawn(process.execPath, ['--enable-source-maps', '--import', o.loader, o.entry], {
      cwd: o.root,
      // A restart starts loading while the previous run stops: it waits for the database folder and the port.
      // The first run waits for nobody: a port held by another program is an error at once.
      env: { ...process.env, ...(afterPrevious ? { ONEPIPE_WAIT_FOR_PREVIOUS_MS: String(o.stopTimeoutMs + 5000) } : {}), ...o.env },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const kid: Kid = { proc: c, terminated: false, exited: Promise.resolve() }
    kid.exited = new Promise<void>((resolve) => {
      c.once('exit', (code, signal) => {
        kids.delete(kid)
        if (!kid.terminated && !stopped) o.say(`onepipe dev: the app exited (${signal ?? `code ${code}`}); fix it and save a file to start it again`)
        firstStart()
        resolve()
      })
    })
    kids.add(kid)
    // The app's lines pass through as they are; its listening line also gets a readable summary.
    createInterface({ input: c.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      process.stdout.write(`${line}\n`)
      const url = listeningUrl(line)
      if (url !== undefined) {
        // Only apps with state serve the dashboard: name it only when it answers.
        void fetch(`${url}/__onepipe/dashboard/`, { signal: AbortSignal.timeout(2000) })
          .then((r) => r.ok, () => false)
          .then((dashboard) => {
            o.say(`onepipe dev: app ${url}${dashboard ? `  dashboard ${url}/__onepipe/dashboard/` : ''}  (restarts when a source file under ${o.root} changes)`)
            firstStart()
          })
      }
    })
  }

  /** SIGTERM (the app drains and runs its hooks), SIGKILL past the budget. */
  const terminate = (kid: Kid): Promise<void> => {
    kid.terminated = true
    kid.proc.kill('SIGTERM')
    const killer = setTimeout(() => kid.proc.kill('SIGKILL'), o.stopTimeoutMs)
    return kid.exited.finally(() => clearTimeout(killer))
  }

  // The next run starts at once, beside the one stopping: loading its code overlaps the other's drain, and it
  // takes the database folder and the port when they are let go (ONEPIPE_WAIT_FOR_PREVIOUS_MS).
  const restart = (): void => {
    const previous = [...kids]
    run(previous.length > 0)
    for (const k of previous) void terminate(k)
  }

  let timer: NodeJS.Timeout | undefined
  const watcher: FSWatcher = watch(o.root, { ignored: (p: string, stats?: { isFile(): boolean }) => IGNORED.test(p) || (stats?.isFile() === true && !SOURCE.test(p)), ignoreInitial: true })
  watcher.on('all', (_event, path) => {
    if (!SOURCE.test(path)) return
    // Saves come in bursts (an editor writes a temp file, then renames): one restart per burst.
    clearTimeout(timer)
    timer = setTimeout(() => {
      o.say(`onepipe dev: ${path} changed; restarting`)
      restart()
    }, 150)
  })
  watcher.on('error', (err) => o.say(`onepipe dev: watching failed: ${err instanceof Error ? err.message : String(err)}`))

  run(false)
  // However this process ends, its app does not outlive it (a closed terminal sends SIGHUP; a crash here).
  const orphanGuard = () => {
    for (const k of kids) k.proc.kill('SIGTERM')
  }
  process.once('exit', orphanGuard)
  return {
    started,
    get starts() {
      return starts
    },
    async stop() {
      stopped = true
      clearTimeout(timer)
      await watcher.close()
      await Promise.all([...kids].map(terminate))
      process.off('exit', orphanGuard)
    },
  }
}

interface Kid {
  proc: ChildProcess
  terminated: boolean
  exited: Promise<void>
}

/** The URL in the app's "OnePipe app listening" log line (JSON), if it is that line. */
export function listeningUrl(line: string): string | undefined {
  if (!line.includes('OnePipe app listening')) return undefined
  try {
    const url = (JSON.parse(line) as { url?: unknown }).url
    return typeof url === 'string' ? url : undefined
  } catch {
    return undefined
  }
}
