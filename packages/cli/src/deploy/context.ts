import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { ConfigError, ValidationError } from '@onepipe/core'
import { appRelativeDirs, type AppNeeds } from './needs.js'

/** The targets `onepipe deploy` writes for. */
export const TARGETS = ['compose', 'kubernetes', 'standalone'] as const
/** One of {@link TARGETS}. */
export type Target = (typeof TARGETS)[number]

/** Everything the writers of one target read. */
export interface DeployContext {
  /** The environment's name, e.g. `production`. */
  env: string
  target: Target
  /** A DNS label made of the app's package name and the environment: names every object. */
  name: string
  image: string
  replicas: number
  /** Absolute folder the files go to. */
  outDir: string
  /** Absolute folder of the app's package.json: the image's build context. */
  appRoot: string
  /** The entry inside the app's root, with forward slashes (`dist/main.js`). */
  entry: string
  /** Migration folders inside the app's root. */
  migrations: string[]
  needs: AppNeeds
}

/** The package folder of a file: the nearest parent with a package.json. */
export function packageRoot(file: string): string {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir
    if (dirname(dir) === dir) throw new ConfigError('DEPLOY_NO_PACKAGE', `No package.json above ${file}; deploy an entry inside an npm package (the image installs its dependencies)`)
  }
}

/** `@acme/shop-api` → `shop-api`: what is left is a DNS label (Kubernetes names, compose services). */
export function dnsLabel(raw: string): string {
  const base = raw.slice(raw.lastIndexOf('/') + 1).toLowerCase()
  return base.replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'app'
}

/**
 * Checks the environment name: it becomes part of object names and paths.
 *
 * @throws ValidationError `DEPLOY_BAD_ENV` for anything but a short lower-case label
 *
 * @example
 * ```ts
 * envName('production') // 'production'
 * ```
 */
export function envName(env: string): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$/.test(env)) {
    throw new ValidationError('environment name', [{ path: 'env', message: `"${env}" must be a lower-case label of at most 20 letters, digits and dashes, e.g. production or staging` }], { code: 'DEPLOY_BAD_ENV' })
  }
  return env
}

/** Inputs of {@link deployContext}, as the command gives them. */
export interface ContextInput {
  env: string
  target: Target
  entry: string
  out: string | undefined
  image: string | undefined
  replicas: number
  needs: AppNeeds
}

/**
 * Resolves names and paths once so every writer agrees on them.
 *
 * @example
 * ```ts
 * const ctx = deployContext({ env: 'production', target: 'compose', entry: 'dist/main.js', out: undefined, image: undefined, replicas: 2, needs })
 * ```
 */
export function deployContext(i: ContextInput): DeployContext {
  const entry = resolve(i.entry)
  const appRoot = packageRoot(entry)
  const pkg = JSON.parse(readFileSync(join(appRoot, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown }
  const app = dnsLabel(typeof pkg.name === 'string' ? pkg.name : 'app')
  const env = envName(i.env)
  const version = typeof pkg.version === 'string' ? pkg.version : 'latest'
  return {
    env,
    target: i.target,
    name: `${app}-${env}`,
    image: i.image ?? `${app}:${version}`,
    replicas: i.replicas,
    outDir: resolve(i.out ?? join('deploy', env, i.target)),
    appRoot,
    entry: relative(appRoot, entry).split('\\').join('/'),
    migrations: appRelativeDirs(appRoot, i.needs.migrationDirs),
    needs: i.needs,
  }
}
