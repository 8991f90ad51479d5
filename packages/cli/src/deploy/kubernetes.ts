import type { DeployContext } from './context.js'
import { configVars, imageTag, secretVars } from './env.js'
import { NODE_UID, ONEPIPE_BIN } from './dockerfile.js'
import { WORKERS_PORT } from './needs.js'

/** A Kubernetes object as written: plain data, checked against the API schemas in the tests. */
export type KubeObject = { apiVersion: string; kind: string; metadata: { name: string; labels: Record<string, string> } } & Record<string, unknown>

/** Seconds the pod sleeps in preStop so endpoints drop it before it stops taking requests. */
const PRESTOP_SECONDS = 5

/** The Secret the objects read; created by the operator (see .env.example), never by these files. */
export const secretName = (ctx: DeployContext) => `${ctx.name}-secrets`

const labels = (ctx: DeployContext, component: string) => ({
  'app.kubernetes.io/name': ctx.name,
  'app.kubernetes.io/instance': ctx.name,
  'app.kubernetes.io/component': component,
  'app.kubernetes.io/version': dnsSafe(imageTag(ctx.image)),
  'app.kubernetes.io/managed-by': 'onepipe',
})
/** The labels that pick the app's pods; never the version, which would orphan old pods on upgrade. */
const selector = (ctx: DeployContext) => ({ 'app.kubernetes.io/name': ctx.name, 'app.kubernetes.io/component': 'app' })

function dnsSafe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '').slice(0, 63) || 'latest'
}

/** The environment of every container: settings from the ConfigMap, each secret by key (optional ones may be absent). */
function env(ctx: DeployContext): Record<string, unknown> {
  return {
    envFrom: [{ configMapRef: { name: `${ctx.name}-config` } }],
    env: secretVars(ctx.needs).map((v) => ({ name: v.name, valueFrom: { secretKeyRef: { name: secretName(ctx), key: v.name, ...(v.required ? {} : { optional: true }) } } })),
  }
}

const containerSecurity = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }
const podSecurity = { runAsNonRoot: true, runAsUser: NODE_UID, runAsGroup: NODE_UID, seccompProfile: { type: 'RuntimeDefault' } }

function appContainer(ctx: DeployContext): Record<string, unknown> {
  const n = ctx.needs
  return {
    name: 'app',
    image: ctx.image,
    ...env(ctx),
    ports: [{ name: 'http', containerPort: n.port }, ...(n.pipelines ? [{ name: 'workers', containerPort: WORKERS_PORT }] : [])],
    readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 5, failureThreshold: 2 },
    livenessProbe: { httpGet: { path: '/health', port: 'http' }, initialDelaySeconds: 10, periodSeconds: 10, failureThreshold: 3 },
    startupProbe: { httpGet: { path: '/health', port: 'http' }, periodSeconds: 2, failureThreshold: 60 },
    lifecycle: { preStop: { exec: { command: ['sleep', String(PRESTOP_SECONDS)] } } },
    resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } },
    securityContext: containerSecurity,
  }
}

/**
 * The grace period: preStop, then the app's whole shutdown budget (drain and
 * hooks), plus a margin, so Kubernetes never kills a shutdown in progress.
 */
export function gracePeriodSeconds(ctx: DeployContext): number {
  return PRESTOP_SECONDS + Math.ceil(ctx.needs.shutdownMs / 1000) + 5
}

function deployment(ctx: DeployContext): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: ctx.name, labels: labels(ctx, 'app') },
    spec: {
      replicas: ctx.replicas,
      selector: { matchLabels: selector(ctx) },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: labels(ctx, 'app') },
        spec: { terminationGracePeriodSeconds: gracePeriodSeconds(ctx), securityContext: podSecurity, containers: [appContainer(ctx)] },
      },
    },
  }
}

function service(ctx: DeployContext, name: string, port: { name: string; port: number }): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, labels: labels(ctx, 'app') },
    spec: { type: 'ClusterIP', selector: selector(ctx), ports: [{ name: port.name, port: port.port, targetPort: port.name, protocol: 'TCP' }] },
  }
}

function configMap(ctx: DeployContext): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${ctx.name}-config`, labels: labels(ctx, 'app') }, data: configVars(ctx.needs, imageTag(ctx.image)) }
}

/** Named per image tag: a Job is immutable, so each release gets its own and old ones expire. */
function migrationJob(ctx: DeployContext): KubeObject {
  const name = `${ctx.name}-migrate-${dnsSafe(imageTag(ctx.image)).toLowerCase().replace(/[._]/g, '-')}`.slice(0, 63).replace(/-+$/, '')
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, labels: labels(ctx, 'migrate') },
    spec: {
      backoffLimit: 3,
      ttlSecondsAfterFinished: 86_400,
      template: {
        metadata: { labels: labels(ctx, 'migrate') },
        spec: {
          restartPolicy: 'OnFailure',
          securityContext: podSecurity,
          containers: [{ name: 'migrate', image: ctx.image, command: ['node', ONEPIPE_BIN, 'migrate', ctx.entry], ...env(ctx), securityContext: containerSecurity }],
        },
      },
    },
  }
}

/** Voluntary evictions (node drains) take one pod at a time, never the last ready one of several. */
function disruptionBudget(ctx: DeployContext): KubeObject {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: ctx.name, labels: labels(ctx, 'app') },
    spec: { maxUnavailable: 1, selector: { matchLabels: selector(ctx) } },
  }
}

/**
 * Every object of the app, keyed by the file it goes to. Backing services
 * (PostgreSQL, Redis, RabbitMQ, a streams server) are not deployed here:
 * the pods reach them by the URLs in the Secret.
 *
 * @example
 * ```ts
 * for (const [file, obj] of Object.entries(kubernetesObjects(ctx))) writeFileSync(file, stringify(obj))
 * ```
 */
export function kubernetesObjects(ctx: DeployContext): Record<string, KubeObject> {
  return {
    'configmap.yaml': configMap(ctx),
    ...(ctx.needs.postgresql ? { 'migrate-job.yaml': migrationJob(ctx) } : {}),
    'deployment.yaml': deployment(ctx),
    'service.yaml': service(ctx, ctx.name, { name: 'http', port: 80 }),
    ...(ctx.needs.pipelines ? { 'workers-service.yaml': service(ctx, `${ctx.name}-workers`, { name: 'workers', port: WORKERS_PORT }) } : {}),
    'poddisruptionbudget.yaml': disruptionBudget(ctx),
  }
}
