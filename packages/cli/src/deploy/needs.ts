import { isAbsolute, relative } from 'node:path'
import { ConfigError, type Manifest, type ManifestEntry } from '@onepipe/core'

/** The shutdown budget serve() uses when the app builds no Lifecycle (packages/sdk Lifecycle's default). */
export const DEFAULT_SHUTDOWN_MS = 30_000
/** The port serve() listens on without `port` or PORT. */
export const DEFAULT_PORT = 3000
/** The external worker API of pipelines (ControlPlane's default `ONEPIPE_WORKERS_PORT`). */
export const WORKERS_PORT = 8081
/** The port the streams server is given in generated files (its own default too). */
export const STREAMS_PORT = 9999

/** What an app needs from where it runs, read from its manifest only. */
export interface AppNeeds {
  postgresql: boolean
  redis: boolean
  rabbitmq: boolean
  /** A flow without a database keeps its events on a streams server. */
  streams: boolean
  /** The app runs pipelines: workers reach the control plane's API on {@link WORKERS_PORT}. */
  pipelines: boolean
  /** An Auth signs tokens: a signing secret must be given. */
  auth: boolean
  port: number
  /** The Lifecycle timeout: how long a stopping instance may take. */
  shutdownMs: number
  /** Folders of numbered SQL files the app's databases apply, as found when the manifest was read. */
  migrationDirs: string[]
}

/** Choices the manifest cannot answer. */
export interface NeedsOptions {
  /**
   * Dispatch pipelines through RabbitMQ. A ControlPlane picks RabbitMQ when
   * RABBITMQ_URL is set, which is a choice of the deployment, not a
   * primitive of the app, so the manifest records it only when a primitive
   * lists `rabbitmq`.
   */
  rabbitmq?: boolean
}

const uses = (m: Manifest, infra: string) => m.primitives.some((p) => (p.infrastructure as string[]).includes(infra))
const find = (m: Manifest, primitive: string): ManifestEntry | undefined => m.primitives.find((p) => p.primitive === primitive)

function positiveNumber(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined
}

/** `source:/abs/dir` entries of each database's migrations; inline ones (`source:id_name`) are not folders. */
function migrationDirsOf(m: Manifest): string[] {
  const dirs = new Set<string>()
  for (const p of m.primitives.filter((e) => e.primitive === 'database')) {
    const list = Array.isArray(p.config.migrations) ? (p.config.migrations as unknown[]) : []
    for (const item of list) {
      if (typeof item !== 'string') continue
      const dir = item.slice(item.indexOf(':') + 1)
      if (isAbsolute(dir)) dirs.add(dir)
    }
  }
  return [...dirs]
}

/**
 * Reads what the app requires from its manifest: backing services, the
 * worker API, a signing secret, its port and shutdown budget.
 *
 * @throws ConfigError `DEPLOY_NO_APP` when the entry never called serve(), `DEPLOY_RABBITMQ_UNUSED` when
 *   RabbitMQ is asked for an app without pipelines
 *
 * @example
 * ```ts
 * const needs = needsOf(await readManifest('dist/main.js'), { rabbitmq: false })
 * if (needs.postgresql) console.log('give it DATABASE_URL')
 * ```
 */
export function needsOf(m: Manifest, o: NeedsOptions = {}): AppNeeds {
  const app = find(m, 'app')
  if (!app) throw new ConfigError('DEPLOY_NO_APP', 'The entry built primitives but never called serve(); deploy the file that starts the app (the one `npm start` runs)')
  const pipelines = m.primitives.some((p) => p.primitive === 'pipeline') || componentsOf(app).some((c) => c.startsWith('pipeline'))
  if (o.rabbitmq === true && !pipelines) throw new ConfigError('DEPLOY_RABBITMQ_UNUSED', 'Only pipelines dispatch through RabbitMQ and this app has none; drop --rabbitmq')
  return {
    postgresql: uses(m, 'postgresql'),
    redis: uses(m, 'redis'),
    rabbitmq: uses(m, 'rabbitmq') || (pipelines && o.rabbitmq === true),
    streams: uses(m, 'streams'),
    pipelines,
    auth: m.primitives.some((p) => p.primitive === 'auth'),
    port: positiveNumber(app.config.port) ?? DEFAULT_PORT,
    shutdownMs: positiveNumber(find(m, 'lifecycle')?.config.timeoutMs) ?? DEFAULT_SHUTDOWN_MS,
    migrationDirs: migrationDirsOf(m),
  }
}

function componentsOf(app: ManifestEntry): string[] {
  const list = app.config.components
  return Array.isArray(list) ? list.filter((c): c is string => typeof c === 'string') : []
}

/**
 * The migration folders as paths inside the app's root, for the image to copy.
 *
 * @throws ConfigError `DEPLOY_MIGRATIONS_OUTSIDE_APP` for a folder the image could not contain
 *
 * @example
 * ```ts
 * appRelativeDirs('/src/shop', ['/src/shop/sql']) // ['sql']
 * ```
 */
export function appRelativeDirs(appRoot: string, dirs: string[]): string[] {
  return dirs.map((d) => {
    const rel = relative(appRoot, d)
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw new ConfigError('DEPLOY_MIGRATIONS_OUTSIDE_APP', `The migrations folder ${d} is outside the app's root ${appRoot}; keep it inside the package so the image can carry it`)
    return rel.split('\\').join('/')
  })
}
