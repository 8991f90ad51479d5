/**
 * `onepipe-streams serve --port 9999 --store file --dir .onepipe/streams`
 *
 * Runs the Unbroken streams server standalone; `onepipe streams serve` is
 * the same command (both come from ./cli). Loaded by bin/onepipe-streams.js.
 */
import { Command } from 'commander'
import { addServeCommand, configureProgram, packageVersion, runProgram } from './cli/index.js'

const program = configureProgram(new Command('onepipe-streams'), packageVersion(new URL('../package.json', import.meta.url)))
  .description('The Unbroken streams server of OnePipe, standalone')
addServeCommand(program)

// Exit explicitly: a store's client (Redis, PostgreSQL) may keep the loop alive after stop.
process.exit(await runProgram(program, process.argv.slice(2)))
