import { existsSync } from 'node:fs'
import { relative } from 'node:path'
import { DEV_ADMIN_EMAIL, devAdminFile, OnePipeError } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { createPipelineOS } from './app.js'
import { WORKERS_APPLICATION } from './contracts.js'
import { createDb, ensureDevWorkerKey } from './setup.js'

const db = createDb()
const pipelineos = createPipelineOS(db)
function fail(what: string, e: unknown): never {
  // serve() logs its own failures; a person at a terminal reads the cause and what to do in one line.
  process.stderr.write(`\n  PipelineOS ${what}: ${e instanceof OnePipeError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e)}\n\n`)
  process.exit(1)
}
let app: App
try {
  app = await serve({ ...pipelineos.serve, version: '1.0.0' }) // PORT, else 3000
} catch (e) {
  fail('could not start', e)
}

// The workers' application exists from the first start, so `onepipe keys create --app` and the admin routes find it.
let keyFile: string | undefined
try {
  await pipelineos.workers.id()
  keyFile = await ensureDevWorkerKey(db, pipelineos.auth, pipelineos.workers)
} catch (e) {
  await app.shutdown('start-up failed')
  fail(`could not set up the workers' application "${WORKERS_APPLICATION}"`, e)
}

/** A path as a person at this terminal would type it: relative when below the working folder. */
function shown(file: string): string {
  const rel = relative(process.cwd(), file)
  return rel === '' || rel.startsWith('..') ? file : rel
}

function login(): string {
  const file = devAdminFile(db)
  if (file && existsSync(file)) return `log in as ${DEV_ADMIN_EMAIL}; the password is in ${shown(file)}`
  return process.env.ONEPIPE_ADMIN_EMAIL ? `log in as ${process.env.ONEPIPE_ADMIN_EMAIL}` : 'set ONEPIPE_ADMIN_EMAIL and ONEPIPE_ADMIN_PASSWORD to make the first admin'
}

const workersPort = process.env.ONEPIPE_WORKERS_PORT ?? '8081'
const where = db.kind === 'pglite' ? `embedded PGlite in ${db.options.dataDir ?? 'memory'}` : `PostgreSQL (DATABASE_URL${db.schema ? `, schema ${db.schema}` : ''})`
process.stdout.write(
  [
    '',
    `  PipelineOS is running on ${where}`,
    `  API          ${app.url}/api/blueprints   ${app.url}/api/leads   ${app.url}/api/bids/:id`,
    `  OpenAPI      ${app.url}/openapi.json`,
    `  Worker API   ${workersPort === '0' ? 'on a free port (see the "worker API listening" log line)' : `http://127.0.0.1:${workersPort}`}   (the worker's ONEPIPE_WORKERS_URL)`,
    `  Worker key   ${keyFile ? `${shown(keyFile)} (npm run worker reads it)` : `onepipe keys create --app ${WORKERS_APPLICATION}, then ONEPIPE_API_KEY for the worker`}`,
    `  Dashboard    ${app.url}/__onepipe/dashboard/   (${login()})`,
    `  Health       ${app.url}/health   Ready ${app.url}/ready`,
    '',
  ].join('\n') + '\n',
)
