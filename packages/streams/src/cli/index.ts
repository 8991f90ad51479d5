/**
 * The command line of the streams server, shared by `onepipe-streams` and
 * `onepipe streams`: one definition of `serve` and one way of running a
 * commander program, so both bins parse, help and fail the same way.
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { OnePipeError } from '@onepipe/core'
import { UnbrokenServer } from '../server/index.js'
import { createStore, storeKinds } from '../stores/index.js'

// Re-exported so a program built elsewhere (the `onepipe` bin) uses this very
// copy of commander: settings inherited by subcommands and the error class
// runProgram recognises belong to one copy, and npm may install several.
export { Command, Option } from 'commander'

/** The flags of `serve` once parsed and validated (camel-cased by commander). */
export interface ServeFlags {
  port: number
  host: string
  store: string
  dir: string
  redisUrl?: string
  databaseUrl?: string
  longPollTimeoutMs?: number
  sseLifetimeMs?: number
  maxBodyBytes?: number
}

/**
 * Argument parser for a count, port or duration: a whole number ≥ 0. The
 * error becomes commander's "option '--port <n>' argument 'x' is invalid"
 * message, which names the option, and exit code 2.
 *
 * @example
 * ```ts
 * new Option('--port <n>').argParser(nonNegativeInteger)
 * ```
 */
export function nonNegativeInteger(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('It must be a whole number, 0 or more.')
  return n
}

/**
 * Argument parser for a TCP port: a whole number from 0 to 65535 (0 picks a
 * free one); anything else is a usage error (exit 2) naming the option.
 *
 * @example
 * ```ts
 * new Option('--port <n>').argParser(portNumber)
 * ```
 */
export function portNumber(value: string): number {
  const n = nonNegativeInteger(value)
  if (n > 65535) throw new InvalidArgumentError('It must be a port from 0 to 65535.')
  return n
}

/**
 * Gives a program the settings every OnePipe bin shares. Commands added
 * afterwards with `.command()` inherit them; call it before adding any.
 *
 * - usage errors throw instead of exiting, so {@link runProgram} picks the
 *   exit code (2, the convention for "wrong usage", where commander says 1);
 * - the error is followed by the command's usage, both on stderr;
 * - `--help`/`-h` on every command, `--version`/`-V` on the program.
 *
 * @example
 * ```ts
 * const program = configureProgram(new Command('onepipe-streams'), '0.1.0')
 * addServeCommand(program)
 * ```
 */
export function configureProgram(program: Command, version: string): Command {
  return program
    .version(version, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'print this help and exit; nothing else runs')
    .exitOverride()
    .showHelpAfterError()
    .allowExcessArguments(false)
}

/**
 * Adds `serve` (the Unbroken streams server) under `parent`: the root of
 * `onepipe-streams`, or the `streams` command of `onepipe`. Flags fall back
 * to ONEPIPE_STREAMS_PORT, REDIS_URL and DATABASE_URL. The action resolves
 * once the server has stopped on SIGINT/SIGTERM.
 *
 * @example
 * ```ts
 * const program = configureProgram(new Command('onepipe'), version)
 * addServeCommand(program.command('streams').description('the streams server'))
 * process.exitCode = await runProgram(program, process.argv.slice(2))
 * ```
 */
export function addServeCommand(parent: Command): Command {
  return parent
    .command('serve')
    .description('Run the Unbroken streams server (Durable Streams protocol) until SIGINT/SIGTERM')
    .addOption(new Option('--port <n>', 'TCP port; 0 picks a free one').env('ONEPIPE_STREAMS_PORT').default(9999).argParser(portNumber))
    .addOption(new Option('--host <addr>', 'interface to bind').default('127.0.0.1'))
    .addOption(new Option('--store <kind>', 'where streams live').choices(storeKinds()).default('memory'))
    .addOption(new Option('--dir <path>', 'file store directory').default('.onepipe/streams'))
    .addOption(new Option('--redis-url <url>', 'Redis store URL').env('REDIS_URL'))
    .addOption(new Option('--database-url <url>', 'PostgreSQL store URL').env('DATABASE_URL'))
    .addOption(new Option('--long-poll-timeout-ms <n>', 'how long a live=long-poll read waits (default 20000)').argParser(nonNegativeInteger))
    .addOption(new Option('--sse-lifetime-ms <n>', 'how long one SSE connection stays open (default 60000)').argParser(nonNegativeInteger))
    .addOption(new Option('--max-body-bytes <n>', 'largest accepted body, else 413 (default 4194304)').argParser(nonNegativeInteger))
    .action((flags: ServeFlags) => serveStreams(flags))
}

/**
 * Runs the streams server with parsed flags, prints where it listens, and
 * resolves after it has stopped on SIGINT or SIGTERM.
 *
 * @example
 * ```ts
 * await serveStreams({ port: 0, host: '127.0.0.1', store: 'memory', dir: '.onepipe/streams' })
 * ```
 */
export async function serveStreams(flags: ServeFlags): Promise<void> {
  const store = await createStore(flags.store, {
    dir: flags.dir,
    ...(flags.redisUrl ? { redisUrl: flags.redisUrl } : {}),
    ...(flags.databaseUrl ? { databaseUrl: flags.databaseUrl } : {}),
  })
  const server = new UnbrokenServer({
    store,
    port: flags.port,
    host: flags.host,
    ...(flags.longPollTimeoutMs !== undefined ? { longPollTimeoutMs: flags.longPollTimeoutMs } : {}),
    ...(flags.sseLifetimeMs !== undefined ? { sseLifetimeMs: flags.sseLifetimeMs } : {}),
    ...(flags.maxBodyBytes !== undefined ? { maxBodyBytes: flags.maxBodyBytes } : {}),
  })
  const { url } = await server.start()
  process.stdout.write(`onepipe streams listening on ${url} (store: ${store.kind})\n`)
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
  process.stdout.write(`onepipe streams stopping (${signal})\n`)
  await server.stop()
}

/**
 * Parses `argv` (without node and the script) and runs the chosen action.
 * Resolves with the exit code rather than exiting, so the bin decides when
 * the process ends:
 *
 * - 0 after the action, `--help` or `--version`;
 * - 2 for a usage error (unknown command or option, missing or invalid
 *   argument, no command): commander has already printed the error and the
 *   usage on stderr;
 * - 1 when the action fails: one line `<name>: CODE: message` on stderr.
 *
 * @example
 * ```ts
 * const code = await runProgram(program, process.argv.slice(2))
 * process.exit(code)
 * ```
 */
export async function runProgram(program: Command, argv: readonly string[]): Promise<number> {
  try {
    await program.parseAsync([...argv], { from: 'user' })
    return 0
  } catch (e) {
    if (isCommanderError(e)) return e.exitCode === 0 ? 0 : 2
    const text = e instanceof OnePipeError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e)
    process.stderr.write(`${program.name()}: ${text.replace(/\s*\n\s*/g, ' ')}\n`)
    return 1
  }
}

/** Also true for another copy's CommanderError (its codes all start with `commander.`). */
function isCommanderError(e: unknown): e is CommanderError {
  if (e instanceof CommanderError) return true
  const x = e as { code?: unknown; exitCode?: unknown } | null
  return e instanceof Error && typeof x?.code === 'string' && x.code.startsWith('commander.') && typeof x.exitCode === 'number'
}

/**
 * The `version` of the package.json at `url`, for `--version`.
 *
 * @example
 * ```ts
 * packageVersion(new URL('../package.json', import.meta.url)) // '0.1.0'
 * ```
 */
export function packageVersion(url: URL): string {
  const pkg = JSON.parse(readFileSync(url, 'utf8')) as { version?: unknown }
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0'
}
