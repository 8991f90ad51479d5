// A control plane on a fresh schema with two applications and their keys,
// and a tiny HTTP client for the worker API, shared by the pipelines tests.
import { Auth, type Database } from '@onepipe/sdk'
import { ControlPlane } from '@onepipe/pipelines'
import { testDatabase } from '@onepipe/testing'
import type { Pipeline } from '@onepipe/sdk'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies of the API, checked by the tests' expectations
export type Json = any

export interface Plane {
  db: Database
  schema: string
  url: string | undefined
  cp: ControlPlane
  auth: Auth
  base: string
  keyA: string
  keyB: string
  appA: string
  appB: string
  call: (key: string, method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<{ status: number; body: Json }>
  cleanup: () => Promise<void>
}

export async function startPlane(o: { templates?: Pipeline[]; lease?: string; sweep?: string; maxWait?: string } = {}): Promise<Plane> {
  const t = await testDatabase()
  const auth = Auth.create('pipelines-test').db(t.db).secret('x'.repeat(32)).build()
  const cp = ControlPlane.create()
    .db(t.db)
    .auth(auth)
    .port(0)
    .lease(o.lease ?? '30s')
    .sweepEvery(o.sweep ?? '200ms')
    .maxWait(o.maxWait ?? '30s')
    .templates(o.templates ?? [])
    .build()
  await auth.ready()
  await cp.start()
  const a = await auth.applications.create({ name: 'app-a' })
  const b = await auth.applications.create({ name: 'app-b' })
  const ka = await auth.apiKeys.create(a.id, { name: 'worker' })
  const kb = await auth.apiKeys.create(b.id, { name: 'worker' })
  const call = async (key: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${cp.url}${path}`, {
      method,
      headers: { ...(key.startsWith('ows_') ? { authorization: `Bearer ${key}` } : { 'x-api-key': key }), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : undefined }
  }
  return {
    db: t.db,
    schema: t.schema,
    url: t.url,
    cp,
    auth,
    base: cp.url,
    keyA: ka.key,
    keyB: kb.key,
    appA: a.id,
    appB: b.id,
    call,
    cleanup: async () => {
      await cp.stop()
      await auth.close()
      await t.cleanup()
    },
  }
}

/** A four-stage definition: a; b and c in parallel after a; d after both. */
export function diamond(name = 'diamond', handler = (s: string) => `h.${s}`): unknown {
  return {
    name,
    stages: [
      { stageName: 'a', stageHandlerName: handler('a') },
      { stageName: 'b', stageHandlerName: handler('b'), options: { runInParallelWith: ['c'] } },
      { stageName: 'c', stageHandlerName: handler('c') },
      { stageName: 'd', stageHandlerName: handler('d'), options: { dependsOn: ['b', 'c'] } },
    ],
  }
}
