import { relative } from 'node:path'
import { configVars, imageTag, secretVars, type SecretVar } from './env.js'
import type { DeployContext } from './context.js'
import { ONEPIPE_BIN, readyProbeCommand } from './dockerfile.js'
import { STREAMS_PORT, WORKERS_PORT } from './needs.js'

type Service = Record<string, unknown>

/** Compose interpolation that stops `docker compose` with a message when the variable is empty or unset. */
const required = (name: string) => `\${${name}:?set ${name} in .env (see .env.example)}`

/** The database, user and role names in the generated PostgreSQL and RabbitMQ. */
const OWNER = 'onepipe'

/**
 * Secrets compose itself needs: the passwords of the services it runs. The
 * app's URLs are built from them, so the user never writes a URL that could
 * disagree with the password the service was started with.
 */
function serviceSecrets(ctx: DeployContext): SecretVar[] {
  const n = ctx.needs
  const hint = 'URL-safe characters only (it goes into a URL), e.g. openssl rand -hex 24'
  return [
    ...(n.postgresql ? [{ name: 'POSTGRES_PASSWORD', required: true, hint }] : []),
    ...(n.redis ? [{ name: 'REDIS_PASSWORD', required: true, hint }] : []),
    ...(n.rabbitmq ? [{ name: 'RABBITMQ_PASSWORD', required: true, hint }] : []),
  ]
}

/**
 * Every secret compose reads from `.env`: the services' passwords, then the
 * app's own secrets except the URLs compose builds.
 *
 * @example
 * ```ts
 * composeSecrets(ctx).map((v) => v.name) // ['POSTGRES_PASSWORD', 'ONEPIPE_AUTH_SECRET', …]
 * ```
 */
export function composeSecrets(ctx: DeployContext): SecretVar[] {
  const built = new Set(Object.keys(urls(ctx)))
  return [...serviceSecrets(ctx), ...secretVars(ctx.needs).filter((v) => !built.has(v.name))]
}

/** The backing services' URLs inside the compose network, passwords by interpolation only. */
function urls(ctx: DeployContext): Record<string, string> {
  const n = ctx.needs
  return {
    ...(n.postgresql ? { DATABASE_URL: `postgres://${OWNER}:${required('POSTGRES_PASSWORD')}@postgres:5432/${OWNER}` } : {}),
    ...(n.redis ? { REDIS_URL: `redis://:${required('REDIS_PASSWORD')}@redis:6379` } : {}),
    ...(n.rabbitmq ? { RABBITMQ_URL: `amqp://${OWNER}:${required('RABBITMQ_PASSWORD')}@rabbitmq:5672` } : {}),
    ...(n.streams ? { ONEPIPE_STREAMS_URL: `http://streams:${STREAMS_PORT}` } : {}),
  }
}

/** The app's environment: plain settings, URLs, and the required secrets checked before anything starts. */
function appEnvironment(ctx: DeployContext): Record<string, string> {
  const built = urls(ctx)
  const checked = secretVars(ctx.needs).filter((v) => v.required && !(v.name in built))
  return { ...configVars(ctx.needs, imageTag(ctx.image)), ...built, ...Object.fromEntries(checked.map((v) => [v.name, required(v.name)])) }
}

const healthcheck = (test: string[], startPeriod = '20s') => ({ test, interval: '10s', timeout: '5s', retries: 5, start_period: startPeriod })

function backingServices(ctx: DeployContext): Record<string, Service> {
  const n = ctx.needs
  const out: Record<string, Service> = {}
  if (n.postgresql)
    out.postgres = {
      image: 'postgres:16-alpine',
      restart: 'unless-stopped',
      environment: { POSTGRES_USER: OWNER, POSTGRES_DB: OWNER, POSTGRES_PASSWORD: required('POSTGRES_PASSWORD') },
      volumes: ['postgres-data:/var/lib/postgresql/data'],
      healthcheck: healthcheck(['CMD', 'pg_isready', '-U', OWNER, '-d', OWNER]),
    }
  if (n.redis)
    out.redis = {
      image: 'redis:7-alpine',
      restart: 'unless-stopped',
      // The password reaches the health check through the environment, never a written value.
      environment: { REDISCLI_AUTH: required('REDIS_PASSWORD') },
      command: ['redis-server', '--appendonly', 'yes', '--requirepass', required('REDIS_PASSWORD')],
      volumes: ['redis-data:/data'],
      healthcheck: healthcheck(['CMD', 'redis-cli', 'ping']),
    }
  if (n.rabbitmq)
    out.rabbitmq = {
      image: 'rabbitmq:3.13-alpine',
      restart: 'unless-stopped',
      environment: { RABBITMQ_DEFAULT_USER: OWNER, RABBITMQ_DEFAULT_PASS: required('RABBITMQ_PASSWORD') },
      volumes: ['rabbitmq-data:/var/lib/rabbitmq'],
      healthcheck: healthcheck(['CMD', 'rabbitmq-diagnostics', '-q', 'ping'], '40s'),
    }
  return out
}

/** How the app image is built from the app's root, paths relative to the compose file. */
function build(ctx: DeployContext): Service {
  const context = relative(ctx.outDir, ctx.appRoot).split('\\').join('/') || '.'
  return { context, dockerfile: `${relative(ctx.appRoot, ctx.outDir).split('\\').join('/') || '.'}/Dockerfile` }
}

function dependsOn(ctx: DeployContext, extra: Record<string, { condition: string }>): Record<string, { condition: string }> {
  const n = ctx.needs
  const healthy = { condition: 'service_healthy' }
  return { ...(n.postgresql ? { postgres: healthy } : {}), ...(n.redis ? { redis: healthy } : {}), ...(n.rabbitmq ? { rabbitmq: healthy } : {}), ...(n.streams ? { streams: healthy } : {}), ...extra }
}

/** One streams server for every replica: an embedded one per instance would split the events. */
function streamsService(ctx: DeployContext): Service {
  return {
    image: ctx.image,
    build: build(ctx),
    restart: 'unless-stopped',
    command: ['node', ONEPIPE_BIN, 'streams', 'serve', '--host', '0.0.0.0', '--port', String(STREAMS_PORT), '--store', 'file', '--dir', '/data/streams'],
    volumes: ['streams-data:/data'],
    healthcheck: healthcheck(['CMD-SHELL', readyProbeCommand(STREAMS_PORT, '/health')]),
  }
}

function appService(ctx: DeployContext): Service {
  const n = ctx.needs
  // One published port per host: several replicas each get an ephemeral one (put a proxy in front).
  const publish = (p: number) => (ctx.replicas === 1 ? `${p}:${p}` : String(p))
  return {
    image: ctx.image,
    build: build(ctx),
    restart: 'unless-stopped',
    env_file: ['.env'],
    environment: appEnvironment(ctx),
    ports: [publish(n.port), ...(n.pipelines ? [publish(WORKERS_PORT)] : [])],
    depends_on: dependsOn(ctx, n.postgresql ? { migrate: { condition: 'service_completed_successfully' } } : {}),
    healthcheck: healthcheck(['CMD-SHELL', readyProbeCommand(n.port, '/ready')], '30s'),
    // Longer than the app's shutdown budget, so compose never kills a drain it started.
    stop_grace_period: `${Math.ceil(n.shutdownMs / 1000) + 10}s`,
    deploy: { replicas: ctx.replicas },
  }
}

function migrateService(ctx: DeployContext): Service {
  return {
    image: ctx.image,
    build: build(ctx),
    env_file: ['.env'],
    environment: appEnvironment(ctx),
    command: ['node', ONEPIPE_BIN, 'migrate', ctx.entry],
    depends_on: dependsOn(ctx, {}),
  }
}

/**
 * The compose file: the app (with its replicas), the one-shot migration it
 * waits for, and only the backing services the manifest requires, each
 * with a health check and a named volume. Secrets come from `.env`.
 *
 * @example
 * ```ts
 * writeFileSync('compose.yaml', stringify(composeFile(ctx)))
 * ```
 */
export function composeFile(ctx: DeployContext): Record<string, unknown> {
  const backing = backingServices(ctx)
  const services: Record<string, Service> = {
    ...backing,
    ...(ctx.needs.streams ? { streams: streamsService(ctx) } : {}),
    ...(ctx.needs.postgresql ? { migrate: migrateService(ctx) } : {}),
    app: appService(ctx),
  }
  const volumes = Object.fromEntries(Object.values(services).flatMap((s) => (Array.isArray(s.volumes) ? (s.volumes as string[]) : [])).map((v) => [v.slice(0, v.indexOf(':')), {}]))
  return { name: ctx.name, services, ...(Object.keys(volumes).length > 0 ? { volumes } : {}) }
}
