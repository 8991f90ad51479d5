// OnePipe's own routes in /openapi.json (docs/dashboard.md), beside the app's
// REST routes: the operators' API, each channel's RPC route with its schemas,
// and the workflow, flow and signal routes. Every operation names the role it
// needs in `x-onepipe-role`.
import type { Component } from '@onepipe/core'
import { catalogOf } from './catalog.js'

type Role = 'public' | 'caller' | 'viewer' | 'operator' | 'admin'
type Schema = Record<string, unknown>

interface Op {
  method: 'get' | 'post' | 'put' | 'patch'
  path: string
  role: Role
  summary: string
  tag: string
  query?: string[]
  body?: Schema
  response?: Schema
  status?: number
  sse?: boolean
}

const obj: Schema = { type: 'object' }
const any: Schema = {}
const ERROR_REF = { $ref: '#/components/responses/OnePipeError' }

function operation(o: Op): Schema {
  const params = [...o.path.matchAll(/\{([A-Za-z0-9_]+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }))
  const query = (o.query ?? []).map((name) => ({ name, in: 'query', required: false, schema: { type: 'string' } }))
  const ok = o.sse ? { 'text/event-stream': { schema: { type: 'string' } } } : { 'application/json': { schema: o.response ?? obj } }
  return {
    operationId: `onepipe_${o.method}_${o.path.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_|_$/g, '')}`,
    tags: [o.tag],
    summary: o.summary,
    'x-onepipe-role': o.role,
    parameters: [...params, ...query],
    ...(o.body ? { requestBody: { required: true, content: { 'application/json': { schema: o.body } } } } : {}),
    responses: {
      [String(o.status ?? 200)]: { description: 'Success', content: ok },
      '400': ERROR_REF,
      ...(o.role === 'public' ? {} : { '401': ERROR_REF, '403': ERROR_REF }),
      ...(params.length > 0 ? { '404': ERROR_REF } : {}),
      ...(o.method === 'get' ? {} : { '409': ERROR_REF, '413': ERROR_REF }),
      '500': ERROR_REF,
    },
    ...(o.role === 'public' ? {} : { security: [{ bearer: [] }, { apiKey: [] }, { cookie: [] }] }),
  }
}

const P = '/__onepipe'

/** The operations for the primitives an app has. */
function operations(components: readonly Component[]): Op[] {
  const cat = catalogOf(components)
  const ops: Op[] = [
    { method: 'get', path: `${P}/catalog`, role: 'viewer', tag: 'onepipe', summary: "The app's primitives by name, with input schemas" },
    { method: 'get', path: `${P}/instances`, role: 'viewer', tag: 'onepipe', summary: 'Instances by heartbeat' },
    { method: 'get', path: `${P}/live`, role: 'viewer', tag: 'onepipe', summary: 'Live changes (SSE: pipeline, resync)', sse: true },
    { method: 'post', path: `${P}/auth/login`, role: 'public', tag: 'auth', summary: 'Log in (a session; cookies for browsers)', body: { type: 'object', properties: { email: { type: 'string' }, password: { type: 'string' }, mode: { enum: ['cookie', 'token'] } }, required: ['email', 'password'] } },
    { method: 'post', path: `${P}/auth/refresh`, role: 'public', tag: 'auth', summary: 'Rotate a refresh token for a new session', body: { type: 'object', properties: { refreshToken: { type: 'string' } } } },
    { method: 'post', path: `${P}/auth/logout`, role: 'caller', tag: 'auth', summary: 'End the session', status: 204 },
    { method: 'get', path: `${P}/auth/me`, role: 'caller', tag: 'auth', summary: 'The caller' },
    { method: 'get', path: `${P}/auth/users`, role: 'admin', tag: 'auth', summary: 'Users by email', query: ['limit', 'after'] },
    { method: 'post', path: `${P}/auth/users`, role: 'admin', tag: 'auth', summary: 'Create a user', status: 201, body: { type: 'object', properties: { email: { type: 'string' }, password: { type: 'string' }, roles: { type: 'array', items: { type: 'string' } } }, required: ['email', 'password'] } },
    { method: 'get', path: `${P}/auth/users/{id}`, role: 'admin', tag: 'auth', summary: 'A user' },
    { method: 'post', path: `${P}/auth/users/{id}/disable`, role: 'admin', tag: 'auth', summary: 'Disable a user (ends every session)' },
    { method: 'post', path: `${P}/auth/users/{id}/enable`, role: 'admin', tag: 'auth', summary: 'Enable a user' },
    { method: 'put', path: `${P}/auth/users/{id}/roles`, role: 'admin', tag: 'auth', summary: "Set a user's roles", body: { type: 'object', properties: { roles: { type: 'array', items: { type: 'string' } } }, required: ['roles'] } },
    { method: 'get', path: `${P}/auth/applications`, role: 'admin', tag: 'auth', summary: 'Applications' },
    { method: 'post', path: `${P}/auth/applications`, role: 'admin', tag: 'auth', summary: 'Create an application', status: 201, body: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } },
    { method: 'get', path: `${P}/auth/applications/{id}/keys`, role: 'admin', tag: 'auth', summary: "An application's API keys (never the keys themselves)" },
    { method: 'post', path: `${P}/auth/applications/{id}/keys`, role: 'admin', tag: 'auth', summary: 'Create an API key (shown once)', status: 201, body: { type: 'object', properties: { name: { type: 'string' }, roles: { type: 'array', items: { type: 'string' } } }, required: ['name'] } },
    { method: 'post', path: `${P}/auth/keys/{id}/disable`, role: 'admin', tag: 'auth', summary: 'Disable an API key' },
    { method: 'post', path: `${P}/auth/keys/{id}/rotate`, role: 'admin', tag: 'auth', summary: 'Rotate an API key (the new one shown once)', status: 201 },
  ]
  for (const w of cat.workflows) {
    const base = `${P}/workflows/${w.name}`
    ops.push(
      { method: 'post', path: `${base}/start`, role: 'operator', tag: 'workflows', summary: `Start a run of ${w.name}`, status: 201, body: { type: 'object', properties: { input: w.inputSchema ?? any, workflowId: { type: 'string' } } } },
      { method: 'get', path: `${base}/runs`, role: 'viewer', tag: 'workflows', summary: `Runs of ${w.name}`, query: ['status', 'input', 'limit', 'offset'] },
    )
  }
  if (cat.workflows.length > 0) {
    const runs = `${P}/workflows/runs/{id}`
    ops.push(
      { method: 'get', path: runs, role: 'viewer', tag: 'workflows', summary: 'A run with its steps and queued signals' },
      { method: 'post', path: `${runs}/signal/{signal}`, role: 'operator', tag: 'workflows', summary: 'Send a signal to a run', status: 202, body: any },
      { method: 'post', path: `${runs}/cancel`, role: 'operator', tag: 'workflows', summary: 'Cancel a run' },
      { method: 'post', path: `${runs}/retry`, role: 'operator', tag: 'workflows', summary: 'Run a failed or cancelled run again from its last completed step' },
    )
  }
  for (const f of cat.flows) {
    const base = `${P}/flows/${f.name}`
    ops.push(
      { method: 'get', path: `${base}/events`, role: 'viewer', tag: 'flows', summary: `Read ${f.name} from an offset`, query: ['offset', 'tail', 'limit'] },
      { method: 'post', path: `${base}/events`, role: 'operator', tag: 'flows', summary: `Append to ${f.name}`, status: 201, body: any },
      { method: 'get', path: `${base}/stream`, role: 'viewer', tag: 'flows', summary: `Live tail of ${f.name} (SSE, id = offset)`, query: ['offset'], sse: true },
    )
  }
  for (const s of cat.signals) {
    const base = `${P}/signals/${s.name}`
    ops.push(
      { method: 'get', path: base, role: 'viewer', tag: 'signals', summary: `Value of ${s.name}`, response: { type: 'object', properties: { value: any, version: { type: 'integer' } } } },
      { method: 'put', path: base, role: 'operator', tag: 'signals', summary: `Set ${s.name}`, body: any },
      { method: 'patch', path: base, role: 'operator', tag: 'signals', summary: `Merge into ${s.name}`, body: obj },
      { method: 'get', path: `${base}/stream`, role: 'viewer', tag: 'signals', summary: `Changes of ${s.name} (SSE)`, sse: true },
    )
  }
  if (cat.projections.length > 0) ops.push({ method: 'get', path: `${P}/projections`, role: 'viewer', tag: 'projections', summary: 'Projections with their lag behind their flows' })
  for (const p of cat.projections) {
    const base = `${P}/projections/${p.name}`
    ops.push(
      { method: 'get', path: `${base}/state`, role: 'viewer', tag: 'projections', summary: `State of ${p.name}`, query: ['limit'] },
      { method: 'post', path: `${base}/rebuild`, role: 'operator', tag: 'projections', summary: `Rebuild ${p.name} from its flow`, status: 202 },
    )
  }
  if (cat.cron.length > 0) ops.push({ method: 'get', path: `${P}/cron`, role: 'viewer', tag: 'cron', summary: 'Jobs with their next runs, pause state and lease' })
  for (const j of cat.cron) {
    const base = `${P}/cron/${j.name}`
    ops.push(
      { method: 'get', path: `${base}/history`, role: 'viewer', tag: 'cron', summary: `Runs of ${j.name}`, query: ['limit'] },
      { method: 'post', path: `${base}/trigger`, role: 'operator', tag: 'cron', summary: `Run ${j.name} now`, status: 202 },
      { method: 'post', path: `${base}/pause`, role: 'operator', tag: 'cron', summary: `Pause ${j.name}` },
      { method: 'post', path: `${base}/resume`, role: 'operator', tag: 'cron', summary: `Resume ${j.name}` },
    )
  }
  for (const ch of cat.channels) {
    ops.push(
      { method: 'post', path: `/rpc/${ch.name}`, role: 'caller', tag: 'rpc', summary: `Call ${ch.name}${ch.idempotent ? ' (idempotent: Idempotency-Key header)' : ''}`, body: ch.inputSchema ?? any, response: { type: 'object', properties: { result: ch.outputSchema ?? any } } },
      { method: 'get', path: `${P}/channels/${ch.name}/calls`, role: 'viewer', tag: 'channels', summary: `Recent calls of ${ch.name}`, query: ['limit'] },
      { method: 'get', path: `${P}/channels/${ch.name}/keys`, role: 'viewer', tag: 'channels', summary: `Live idempotency entries of ${ch.name}`, query: ['limit'] },
    )
  }
  if (cat.features.pipelines) {
    const base = `${P}/pipelines`
    ops.push(
      { method: 'get', path: base, role: 'viewer', tag: 'pipelines', summary: 'Pipelines, newest first, keyset pages', query: ['status', 'appId', 'q', 'from', 'to', 'limit', 'cursor'] },
      { method: 'get', path: `${base}/{id}`, role: 'viewer', tag: 'pipelines', summary: 'A pipeline with its stages' },
      { method: 'get', path: `${base}/{id}/logs`, role: 'viewer', tag: 'pipelines', summary: "A pipeline's logs", query: ['after'] },
      { method: 'post', path: `${base}/{id}/cancel`, role: 'operator', tag: 'pipelines', summary: 'Cancel a pipeline' },
      { method: 'post', path: `${base}/stages/{id}/rerun`, role: 'operator', tag: 'pipelines', summary: 'Rerun a stage (with the following ones)', body: { type: 'object', properties: { following: { type: 'boolean' } } } },
      { method: 'post', path: `${base}/stages/{id}/skip`, role: 'operator', tag: 'pipelines', summary: 'Skip a stage' },
      { method: 'post', path: `${base}/stages/{id}/resume`, role: 'operator', tag: 'pipelines', summary: 'Approve or reject a stage waiting for approval', body: { type: 'object', properties: { decision: { enum: ['approved', 'rejected'] }, reason: { type: 'string' } }, required: ['decision'] } },
      { method: 'get', path: `${base}/templates`, role: 'viewer', tag: 'pipelines', summary: 'Templates' },
      { method: 'post', path: `${base}/templates/{name}/start`, role: 'operator', tag: 'pipelines', summary: 'Start a pipeline from a template', status: 201, body: { type: 'object', properties: { appId: { type: 'string' }, input: any, keywords: { type: 'array', items: { type: 'string' } }, idempotencyKey: { type: 'string' } }, required: ['appId'] } },
      { method: 'get', path: `${base}/workers`, role: 'viewer', tag: 'pipelines', summary: 'Workers', query: ['limit'] },
      { method: 'get', path: `${base}/workers/{id}/events`, role: 'viewer', tag: 'pipelines', summary: "A worker's events", query: ['limit'] },
      { method: 'post', path: `${base}/workers/{id}/drain`, role: 'operator', tag: 'pipelines', summary: 'Drain a worker' },
      { method: 'get', path: `${base}/events`, role: 'viewer', tag: 'pipelines', summary: 'Pipeline changes (SSE)', sse: true },
      { method: 'get', path: `${base}/handlers/{app}/{name}/policy`, role: 'viewer', tag: 'pipelines', summary: "A handler's policy for an application (or * for all)" },
      { method: 'put', path: `${base}/handlers/{app}/{name}/policy`, role: 'operator', tag: 'pipelines', summary: "Set a handler's policy for an application (or * for all)", body: obj },
    )
  }
  return ops
}

/**
 * Adds OnePipe's own routes to an OpenAPI 3.1 document built from the app's
 * REST routes (paths, the error response, the security schemes).
 *
 * @example
 * ```ts
 * const doc = withOnePipeRoutes(buildOpenApi(info, routeDocs), components)
 * ```
 */
export function withOnePipeRoutes(doc: Record<string, unknown>, components: readonly Component[]): Record<string, unknown> {
  const paths = { ...(doc.paths as Record<string, Record<string, unknown>>) }
  for (const o of operations(components)) (paths[o.path] ??= {})[o.method] = operation(o)
  const comps = (doc.components ?? {}) as Record<string, Record<string, unknown>>
  return {
    ...doc,
    paths,
    components: {
      ...comps,
      securitySchemes: {
        ...comps.securitySchemes,
        bearer: { type: 'http', scheme: 'bearer' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        cookie: { type: 'apiKey', in: 'cookie', name: 'onepipe_access' },
      },
      responses: {
        ...comps.responses,
        OnePipeError: comps.responses?.Error ?? { description: 'Error' },
      },
    },
  }
}
