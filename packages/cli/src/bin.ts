/**
 * `onepipe <command>`: loaded by bin/onepipe.js. See `createProgram` for the
 * commands and `runProgram` for the exit codes.
 */
import { runProgram } from '@onepipe/streams/cli'
import { createProgram } from './program.js'

// Exit explicitly: an app entry loaded by manifest or migrate may leave a
// client or timer open, and the work is done once the action resolves.
process.exit(await runProgram(createProgram(), process.argv.slice(2)))
