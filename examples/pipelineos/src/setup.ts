import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Auth, AuthError, Database } from '@onepipe/sdk'
import { DEFAULT_DATA_DIR, ROLES, WORKER_KEY_FILE, WORKERS_APPLICATION } from './contracts.js'

/** The app's numbered migrations, applied after OnePipe's own. */
export const PIPELINEOS_SQL_DIR = fileURLToPath(new URL('../sql', import.meta.url))

/**
 * The app's database: PostgreSQL when `DATABASE_URL` is set, else embedded
 * PGlite in `.onepipe/pipelineos/db` (or `ONEPIPE_DATA_DIR/db`), a folder
 * of its own so it never meets the tables of another app run beside it.
 *
 * @example
 * ```ts
 * const db = createDb()
 * ```
 */
export function createDb(): Database {
  const b = Database.create('pipelineos').migrations(PIPELINEOS_SQL_DIR, 'pipelineos')
  if (!process.env.DATABASE_URL && !process.env.ONEPIPE_DATA_DIR) b.pglite(resolve(DEFAULT_DATA_DIR, 'db'))
  return b.build()
}

/**
 * Accounts, sessions and API keys on the app's database, with the app's
 * roles (`estimator`, and reading for `viewer`). The signing key comes from
 * `ONEPIPE_AUTH_SECRET` (or `ONEPIPE_AUTH_PRIVATE_KEY`).
 *
 * @example
 * ```ts
 * const auth = createAuth(db)
 * ```
 */
export function createAuth(db: Database): Auth {
  return Auth.create('pipelineos').db(db).roles(ROLES).build()
}

/**
 * The application whose API keys the analysis workers use: found by name
 * (the oldest when several have it, as `onepipe keys create --app` does) or
 * made on first use. Pipelines run for it, and only its keys may read a
 * blueprint's file and report an analysis.
 */
export class WorkersApplication {
  readonly #auth: Auth
  readonly #name: string
  #id: Promise<string> | undefined

  constructor(auth: Auth, name = WORKERS_APPLICATION) {
    this.#auth = auth
    this.#name = name
  }

  /** The application's id, looked up once per process (again after a failed look-up). */
  id(): Promise<string> {
    this.#id ??= this.#find().catch((e: unknown) => {
      this.#id = undefined
      throw e
    })
    return this.#id
  }

  async #find(): Promise<string> {
    const named = async () => (await this.#auth.applications.list()).find((a) => a.name === this.#name)
    const found = await named()
    if (found) return found.id
    await this.#auth.applications.create({ name: this.#name })
    // Two instances starting together may each have made one: both take the oldest, so they agree.
    const oldest = await named()
    if (!oldest) throw new Error(`The application "${this.#name}" was created but cannot be found`)
    return oldest.id
  }

  /** Whether `user` is a key of this application. */
  async holds(user: { kind?: string; applicationId?: string } | undefined): Promise<boolean> {
    return user?.kind === 'application' && user.applicationId !== undefined && user.applicationId === (await this.id())
  }
}

/** Where the development worker key is kept for a database: beside its embedded folder, else nowhere. */
export function devWorkerKeyFile(db: Database): string | undefined {
  const dir = db.options.dataDir
  if (db.kind !== 'pglite' || !dir || dir.includes('://')) return undefined
  return join(dirname(dir), WORKER_KEY_FILE)
}

/**
 * On the embedded default outside production: makes sure `worker-key.txt`
 * beside the database holds a working key of the workers' application, so
 * `npm run worker` needs no setup, the way the development admin's password
 * is kept in `dev-admin.txt`. A key that no longer works (the database was
 * reset) is replaced. Answers the file, or undefined when there is none to keep.
 *
 * @example
 * ```ts
 * const file = await ensureDevWorkerKey(db, auth, workers)
 * ```
 */
export async function ensureDevWorkerKey(db: Database, auth: Auth, workers: WorkersApplication): Promise<string | undefined> {
  const file = devWorkerKeyFile(db)
  if (!file || process.env.NODE_ENV === 'production') return undefined
  if (existsSync(file)) {
    const key = readFileSync(file, 'utf8').trim()
    try {
      const user = await auth.authenticate(new Request('http://localhost/', { headers: { 'x-api-key': key } }))
      if (await workers.holds(user ?? undefined)) return file
    } catch (e) {
      // A refused key is replaced below; anything else (the database is down) is not ours to hide.
      if (!(e instanceof AuthError)) throw e
    }
  }
  const { key } = await auth.apiKeys.create(await workers.id(), { name: 'development' })
  writeFileSync(file, `${key}\n`, { mode: 0o600 })
  return file
}
