import type { AppNeeds } from './needs.js'
import { WORKERS_PORT } from './needs.js'

/** One variable the app reads (names as the runtime spells them). */
export interface SecretVar {
  name: string
  /** The app refuses to start, or cannot work, without it. */
  required: boolean
  /** What to put there; shown beside the empty value in .env.example. */
  hint: string
}

/**
 * The secrets an app with these needs reads: connection URLs (they carry
 * passwords) and signing keys. Values are never written anywhere; the
 * generated files only name them.
 *
 * @example
 * ```ts
 * secretVars(needs).map((v) => v.name) // ['DATABASE_URL', 'ONEPIPE_AUTH_SECRET', …]
 * ```
 */
export function secretVars(needs: AppNeeds): SecretVar[] {
  const out: SecretVar[] = []
  if (needs.postgresql) out.push({ name: 'DATABASE_URL', required: true, hint: 'postgres://user:password@host:5432/db (without it the app falls back to an embedded database on local disk)' })
  if (needs.redis) out.push({ name: 'REDIS_URL', required: true, hint: 'redis://:password@host:6379' })
  if (needs.rabbitmq) out.push({ name: 'RABBITMQ_URL', required: true, hint: 'amqp://user:password@host:5672' })
  if (needs.streams) out.push({ name: 'ONEPIPE_STREAMS_URL', required: true, hint: 'http://streams-host:9999, one streams server shared by every replica' })
  if (needs.auth) {
    // One of the two: the app itself refuses to start in production with neither, naming both.
    out.push({ name: 'ONEPIPE_AUTH_SECRET', required: false, hint: 'this or ONEPIPE_AUTH_PRIVATE_KEY (the app will not start with neither): at least 32 bytes, e.g. openssl rand -base64 48' })
    out.push({ name: 'ONEPIPE_AUTH_PRIVATE_KEY', required: false, hint: 'this or ONEPIPE_AUTH_SECRET: a PEM private key (tokens signed with it, verifiable with its public key)' })
    out.push({ name: 'ONEPIPE_ADMIN_EMAIL', required: false, hint: 'the first admin, made at start when no admin exists' })
    out.push({ name: 'ONEPIPE_ADMIN_PASSWORD', required: false, hint: "that admin's password" })
  }
  return out
}

/**
 * Plain settings, safe to write: production mode, the ports, and for
 * pipelines the worker API bound to every interface (its default is
 * loopback, which no worker outside the container could reach).
 *
 * @example
 * ```ts
 * configVars(needs, '1.4.0') // { NODE_ENV: 'production', PORT: '3000', ONEPIPE_VERSION: '1.4.0', … }
 * ```
 */
export function configVars(needs: AppNeeds, version: string): Record<string, string> {
  return {
    NODE_ENV: 'production',
    PORT: String(needs.port),
    LOG_LEVEL: 'info',
    ONEPIPE_VERSION: version,
    ...(needs.pipelines ? { ONEPIPE_WORKERS_HOST: '0.0.0.0', ONEPIPE_WORKERS_PORT: String(WORKERS_PORT) } : {}),
  }
}

/**
 * The text of a `.env.example`: every secret with an empty value and what
 * to put there. Copy it to `.env`, fill it in, and never commit the copy.
 *
 * @example
 * ```ts
 * writeFileSync('.env.example', envExample(vars, 'docker compose --env-file .env up'))
 * ```
 */
export function envExample(vars: SecretVar[], usage: string): string {
  const lines = ['# Secrets of this deployment: copy to .env, fill in, never commit the copy.', `# ${usage}`, '']
  for (const v of vars) lines.push(`# ${v.required ? 'required' : 'optional'}: ${v.hint}`, `${v.name}=`, '')
  return lines.join('\n')
}

/** Versions from an image reference: `shop:1.4.0` → `1.4.0`, no tag → `latest`. */
export function imageTag(image: string): string {
  const afterSlash = image.slice(image.lastIndexOf('/') + 1)
  const at = afterSlash.indexOf(':')
  return at === -1 ? 'latest' : afterSlash.slice(at + 1)
}
