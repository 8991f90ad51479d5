// Starts PipelineOS as users run it, `node dist/main.js`, on PostgreSQL in a
// schema of its own, with its people (admin, estimator, viewer) and a key of
// the workers' application; workers are `node dist/worker.js` processes.
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Database } from '@onepipe/sdk'
import { postgresUrl, requireService, spawnNode, uniqueName, type NodeProcess } from '@onepipe/testing'
import { WORKERS_APPLICATION } from '../src/contracts.js'

const dir = fileURLToPath(new URL('..', import.meta.url))
const PEOPLE = {
  admin: { email: 'admin@pipelineos.test', password: 'a long test passphrase' },
  estimator: { email: 'estimator@pipelineos.test', password: 'estimates all day long' },
  viewer: { email: 'viewer@pipelineos.test', password: 'only looking, thank you' },
}

/** Who a request is sent as. */
export type Role = keyof typeof PEOPLE
/** Options of a request: whose access token it carries, and the status expected. */
export type CallInit = RequestInit & { as?: Role; status?: number }

/** A running PipelineOS and what a test needs to talk to it. */
export interface Harness {
  base: string
  workersUrl: string
  /** A key of the workers' application. */
  workerKey: string
  /** The access token of each person. */
  tokens: Record<Role, string>
  db: Database
  call(path: string, init?: CallInit): Promise<Response>
  /** The JSON answer; throws when the status is not `init.status` (default 200). */
  json<T>(path: string, init?: CallInit): Promise<T>
  post<T>(path: string, body: unknown, as: Role | undefined, status?: number): Promise<T>
  upload(bytes: Buffer, name: string, as?: Role): Promise<Response>
  /** Starts a worker process with the workers' key; resolves once it pulls. */
  startWorker(env?: Record<string, string | undefined>): Promise<NodeProcess>
  /** The app's process. */
  app: NodeProcess
  /** Stops every process still running (SIGTERM, SIGKILL after 20 s) and drops the schema; answers their exit codes. */
  close(): Promise<{ name: string; code: number | string; output: string }[]>
}

/** A blueprint as the API answers it (what these tests look at). */
export interface BlueprintView {
  id: string
  status: string
  mime: string
  filename: string
  sizeBytes: number
  provider: string | null
  pipelineId: string | null
  error: { code: string; message: string } | null
  fixtures: { kind: string; quantity: number; room: string | null; confidencePct: number }[]
}
/** A PNG signature followed by `tail`: as small a blueprint as the app accepts. */
export function png(tail: string): Buffer {
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from(tail)])
}

async function stop(p: NodeProcess): Promise<number | string> {
  p.kill('SIGTERM')
  let t: NodeJS.Timeout | undefined
  const code = await Promise.race([p.exited, new Promise<'timeout'>((r) => (t = setTimeout(() => r('timeout'), 20_000)))])
  clearTimeout(t)
  if (code !== 'timeout') return code
  p.kill('SIGKILL')
  await p.exited
  return 'timeout'
}

/**
 * Starts the app on a fresh schema and logs its people in. Whatever fails
 * on the way, the processes started so far are stopped before it throws.
 */
export async function startPipelineOS(): Promise<Harness> {
  await requireService('postgres')
  const schema = uniqueName('pipelineos')
  const db = Database.create('pipelineos-test').postgres(postgresUrl()).schema(schema).autoMigrate(false).build()
  const processes: { name: string; p: NodeProcess; done: boolean }[] = []
  const track = (name: string, p: NodeProcess) => {
    const entry = { name, p, done: false }
    void p.exited.then(() => (entry.done = true))
    processes.push(entry)
    return p
  }
  const close: Harness['close'] = async () => {
    const live = processes.filter((e) => !e.done).reverse()
    const codes = []
    for (const e of live) codes.push({ name: e.name, code: await stop(e.p), output: e.p.output() })
    await db.execute(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await db.close()
    return codes
  }
  const app = track(
    'app',
    spawnNode(
      'dist/main.js',
      [],
      {
        DATABASE_URL: postgresUrl(),
        ONEPIPE_DB_SCHEMA: schema,
        PORT: '0',
        HOST: '127.0.0.1',
        ONEPIPE_WORKERS_PORT: '0',
        ONEPIPE_AUTH_SECRET: randomBytes(48).toString('base64'),
        ONEPIPE_ADMIN_EMAIL: PEOPLE.admin.email,
        ONEPIPE_ADMIN_PASSWORD: PEOPLE.admin.password,
        PIPELINEOS_RATE_LIMIT: '1000',
        LOG_LEVEL: 'info',
        REDIS_URL: undefined,
        ONEPIPE_DATA_DIR: undefined,
        SMTP_URL: undefined,
        ANTHROPIC_API_KEY: undefined,
        NODE_ENV: undefined,
      },
      { cwd: dir },
    ),
  )
  try {
    const listening = await app.waitFor(/"url":"http:\/\/[^"]+","components"[^\n]*"OnePipe app listening"/, 60_000)
    const base = (/http:\/\/[^"]+/.exec(listening)?.[0] ?? '').replace('//localhost:', '//127.0.0.1:')
    const workersUrl = /http:\/\/[^"]+/.exec(await app.waitFor(/"url":"http:\/\/[^"]+","msg":"pipelines: worker API listening"/))?.[0] ?? ''
    // The banner comes once the workers' application exists.
    await app.waitFor(/PipelineOS is running on PostgreSQL/)

    const tokens: Record<Role, string> = { admin: '', estimator: '', viewer: '' }
    const call = (path: string, init: CallInit = {}) => {
      const headers = new Headers(init.headers)
      if (init.as) headers.set('authorization', `Bearer ${tokens[init.as]}`)
      return fetch(`${base}${path}`, { ...init, headers })
    }
    const json = async <T>(path: string, init: CallInit = {}): Promise<T> => {
      const res = await call(path, init)
      const body = (await res.json()) as T
      if (res.status !== (init.status ?? 200)) throw new Error(`${init.method ?? 'GET'} ${path}: ${res.status} ${JSON.stringify(body)}`)
      return body
    }
    const post = <T>(path: string, body: unknown, as: Role | undefined, status = 201) =>
      json<T>(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...(as ? { as } : {}), status })
    const upload = (bytes: Buffer, name: string, as?: Role) => {
      const form = new FormData()
      form.set('file', new Blob([new Uint8Array(bytes)]), name)
      return call('/api/blueprints', { method: 'POST', body: form, ...(as ? { as } : {}) })
    }
    const login = async (role: Role) => (tokens[role] = (await post<{ accessToken: string }>('/__onepipe/auth/login', PEOPLE[role], undefined, 200)).accessToken)

    await login('admin')
    await post('/__onepipe/auth/users', { ...PEOPLE.estimator, roles: ['estimator'] }, 'admin')
    await post('/__onepipe/auth/users', { ...PEOPLE.viewer, roles: ['viewer'] }, 'admin')
    await login('estimator')
    await login('viewer')
    // The worker's key, made by an admin as an operator would (docs/auth.md).
    const { applications } = await json<{ applications: { id: string; name: string }[] }>('/__onepipe/auth/applications', { as: 'admin' })
    const workersApp = applications.find((a) => a.name === WORKERS_APPLICATION)
    if (!workersApp) throw new Error(`the app did not make the application "${WORKERS_APPLICATION}"`)
    const { key: workerKey } = await post<{ key: string }>(`/__onepipe/auth/applications/${workersApp.id}/keys`, { name: 'test' }, 'admin')

    let workers = 0
    const startWorker = async (env: Record<string, string | undefined> = {}) => {
      const name = `worker-${++workers}`
      const w = track(name, spawnNode('dist/worker.js', [], { ONEPIPE_API_KEY: workerKey, ONEPIPE_WORKERS_URL: workersUrl, PIPELINEOS_URL: base, WORKER_NAME: name, ONEPIPE_DATA_DIR: undefined, ANTHROPIC_API_KEY: undefined, ...env }, { cwd: dir }))
      await w.waitFor(/pulls blueprint\.analyze \(provider local/, 30_000)
      return w
    }
    return { base, workersUrl, workerKey, tokens, db, call, json, post, upload, startWorker, app, close }
  } catch (e) {
    await close()
    throw e
  }
}
