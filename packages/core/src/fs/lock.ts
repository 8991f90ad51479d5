import { readFileSync } from 'node:fs'
import { mkdir, open, readFile, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { ConfigError, TransportError } from '../errors/index.js'

/** A held directory lock; `release()` removes it (idempotent). */
export interface DirLock {
  readonly dir: string
  release(): Promise<void>
}

/** What a lock file records about its holder. */
interface Holder {
  pid: number
  host: string
  /** Kernel start time of the holder (Linux), so a reused pid is told apart from the holder. */
  started: string | null
}

/** Directories locked by this process, so a second open in-process is refused too. */
const heldHere = new Set<string>()

function startTimeOf(pid: number): string | null {
  try {
    // Field 22 of /proc/<pid>/stat, counted after the command name (which may hold spaces).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null
  } catch {
    return null
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function parseHolder(text: string): Holder | undefined {
  try {
    const h = JSON.parse(text) as Partial<Holder>
    if (typeof h.pid === 'number' && typeof h.host === 'string') return { pid: h.pid, host: h.host, started: typeof h.started === 'string' ? h.started : null }
  } catch {
    // Older lock files held the pid alone.
    const pid = Number(text.trim())
    if (Number.isInteger(pid) && pid > 0) return { pid, host: hostname(), started: null }
  }
  return undefined
}

/** Whether the recorded holder is still running (on this host; another host's lock is always honoured). */
function holderAlive(h: Holder): boolean {
  if (h.host !== hostname()) return true
  if (!isAlive(h.pid)) return false
  if (h.started !== null) {
    const now = startTimeOf(h.pid)
    if (now !== null && now !== h.started) return false
  }
  return true
}

/**
 * How long a starting process waits for the previous run of the app to let
 * go of what only one process may hold (the embedded database's folder, the
 * port): `ONEPIPE_WAIT_FOR_PREVIOUS_MS`, default 0 (refuse at once).
 * `onepipe dev` sets it, so the next run loads its code while the previous
 * one stops.
 *
 * @throws ConfigError `INVALID_WAIT` for a value that is not a whole number of ms from 0 to 600,000
 * @example
 * ```ts
 * waitForPreviousMs() // 0 unless ONEPIPE_WAIT_FOR_PREVIOUS_MS is set
 * ```
 */
export function waitForPreviousMs(): number {
  const raw = process.env.ONEPIPE_WAIT_FOR_PREVIOUS_MS
  if (raw === undefined || raw === '') return 0
  const n = Number(raw)
  if (!/^\d+$/.test(raw) || n > 600_000) throw new ConfigError('INVALID_WAIT', `ONEPIPE_WAIT_FOR_PREVIOUS_MS is "${raw}"; it must be a whole number of milliseconds from 0 to 600000`)
  return n
}

/**
 * Takes an exclusive lock on a data directory for this process: a `LOCK`
 * file created with `O_EXCL` that records pid, host and the kernel start
 * time of the holder. A lock whose holder is gone (kill -9, a crashed
 * container whose pid was reused by another process) is stale and taken
 * over; a live holder's lock is refused with a {@link ConfigError} whose
 * message names the folder and the holder, so a second process never
 * writes beside the first. The same folder opened twice in one process is
 * refused as well.
 *
 * @param dir the folder to lock (created if missing)
 * @param o.code the error code when the folder is in use (e.g. `DB_DIR_LOCKED`)
 * @param o.what what the folder holds, for the message (e.g. `embedded database`)
 * @param o.hint what the user can do instead (e.g. `set DATABASE_URL …`)
 * @param o.waitMs how long to wait for a live holder to let go (default {@link waitForPreviousMs}: 0 unless set)
 * @throws ConfigError (`o.code`) when another live process, or this one, holds it;
 *   TransportError `DATA_DIR_IO` when the folder cannot be written
 *
 * @example
 * ```ts
 * const lock = await lockDirectory('.onepipe/db', { code: 'DB_DIR_LOCKED', what: 'embedded database', hint: 'give each process its own ONEPIPE_DATA_DIR' })
 * // … use the folder …
 * await lock.release()
 * ```
 */
export async function lockDirectory(dir: string, o: { code: string; what: string; hint: string; waitMs?: number }): Promise<DirLock> {
  const abs = resolve(dir)
  const until = Date.now() + (o.waitMs ?? waitForPreviousMs())
  const file = join(abs, 'LOCK')
  const refuse = (by: string, h?: Holder): never => {
    throw new ConfigError(o.code, `The ${o.what} in ${abs} is in use by ${by}; only one process may open it. ${o.hint}`, { dir: abs, ...(h ? { pid: h.pid, host: h.host } : {}) })
  }
  if (heldHere.has(abs)) refuse(`this process (pid ${process.pid})`)
  try {
    await mkdir(abs, { recursive: true })
  } catch (e) {
    throw new TransportError('DATA_DIR_IO', `Cannot create ${abs}: ${(e as Error).message}`, { cause: e })
  }
  const me: Holder = { pid: process.pid, host: hostname(), started: startTimeOf(process.pid) }
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(file, 'wx')
      try {
        await fh.writeFile(JSON.stringify(me))
        await fh.sync()
      } finally {
        await fh.close()
      }
      heldHere.add(abs)
      let released = false
      return {
        dir: abs,
        async release() {
          if (released) return
          released = true
          heldHere.delete(abs)
          await unlink(file).catch(() => undefined)
        },
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new TransportError('DATA_DIR_IO', `Cannot lock ${abs}: ${(e as Error).message}`, { cause: e })
    }
    const holder = parseHolder(await readFile(file, 'utf8').catch(() => ''))
    if (holder && holderAlive(holder) && !(holder.pid === process.pid && holder.host === me.host)) {
      // The previous run of the app (onepipe dev) still stopping: wait for it to let go, within the budget.
      if (Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50))
        attempt--
        continue
      }
      refuse(`process ${holder.pid}${holder.host === me.host ? '' : ` on host ${holder.host}`}`, holder)
    }
    // Stale (holder gone, pid reused, or our own pid from an earlier life in a restarted container).
    try {
      await unlink(file)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code !== 'ENOENT') throw new TransportError('DATA_DIR_IO', `The ${o.what} in ${abs} has a stale LOCK file (its holder${holder ? `, process ${holder.pid},` : ''} is gone) that this process cannot remove (${code ?? (e as Error).message}); remove ${file} or run as the user who owns it`, { cause: e })
    }
  }
  return refuse('another process that keeps re-taking it')
}
