// Promise-pipelined RPC over HTTP (POST /rpc/pipeline, Cap'n Web's batch
// protocol): three dependent calls in one request, counted at the server;
// only the allow-list is callable; anonymous callers are refused.
import { newHttpBatchRpcSession } from 'capnweb'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Auth, ConfigError, RPC } from '@onepipe/sdk'
import { serve, type App } from '@onepipe/runtime'
import { testDatabase } from '@onepipe/testing'

let t: Awaited<ReturnType<typeof testDatabase>>
let app: App
let token: string
const calls: string[] = []

interface Api {
  getUser(id: string): { id: string; orgId: string }
  getOrg(id: string): { id: string; name: string }
  countMembers(org: { id: string }): { org: string; members: number }
  whoAmI(): string
}

const api = RPC.create('dash-rpc')
  .expose({
    getUser: async (_ctx, id: string) => {
      calls.push(`getUser(${id})`)
      return { id, orgId: `org-of-${id}` }
    },
    getOrg: async (_ctx, id: string) => {
      calls.push(`getOrg(${id})`)
      return { id, name: `Org ${id}` }
    },
    countMembers: async (_ctx, org: { id: string }) => {
      calls.push(`countMembers(${org.id})`)
      return { org: org.id, members: 3 }
    },
    whoAmI: async (ctx) => ctx.user?.id ?? 'nobody',
  })
  .build()

beforeAll(async () => {
  t = await testDatabase()
  const auth = Auth.create('main').secret('rpc-test-secret-0123456789-abcdefghij').db(t.db).build()
  app = await serve({ db: t.db, auth, components: [api], port: 0, hostname: '127.0.0.1', streams: false, handleSignals: false })
  const user = await auth.users.create({ email: 'rpc@example.test', password: 'correct horse battery', roles: ['viewer'] })
  token = (await auth.login('rpc@example.test', 'correct horse battery')).accessToken
  expect(user.id).toBeDefined()
}, 60_000)
afterAll(async () => {
  await app?.shutdown('test')
  await t?.cleanup()
})

const session = () => newHttpBatchRpcSession<Api>(new Request(`${app.url}/rpc/pipeline`, { headers: { authorization: `Bearer ${token}` } }))
const served = async () => {
  const text = await (await fetch(`${app.url}/metrics`)).text()
  return [...text.matchAll(/onepipe_http_requests_total\{method="POST",route="\/rpc\/pipeline",status="\d+"\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0)
}

it('three dependent calls pipelined over HTTP take one round trip and return what three sequential calls return', async () => {
  const before = await served()
  const s = session()
  const user = s.getUser('u1')
  const org = s.getOrg(user.orgId)
  const members = s.countMembers(org)
  const pipelined = await Promise.all([user, org, members])
  expect(await served()).toBe(before + 1)

  const one = session()
  const u = await one.getUser('u1')
  const two = session()
  const o = await two.getOrg(u.orgId)
  const three = session()
  const m = await three.countMembers(o)
  expect(pipelined).toEqual([u, o, m])
  expect(await served()).toBe(before + 4)
  expect(await session().whoAmI()).toMatch(/^[0-9a-f-]{36}$/)
})

it('refuses what is not on the allow-list, anonymous callers, empty and oversized batches', async () => {
  // Raw batch messages, as an attacker would send them.
  const raw = (body: string, headers: Record<string, string> = { authorization: `Bearer ${token}` }) => fetch(`${app.url}/rpc/pipeline`, { method: 'POST', headers, body })
  for (const m of ['constructor', '__proto__', 'toString', 'dropTables', 'hasOwnProperty']) {
    const res = await raw(`["push",["pipeline",0,["${m}"],[]]]\n["pull",1]`)
    const text = await res.text()
    expect(text, m).toMatch(/"reject"|"error"/)
    expect(text).not.toContain('"resolve"')
  }
  const before = calls.length
  const anon = await raw('["push",["pipeline",0,["getUser"],["u2"]]]\n["pull",1]', {})
  expect(anon.status).toBe(401)
  expect(((await anon.json()) as { error: { code: string; requestId: string } }).error.code).toBe('UNAUTHORIZED')
  expect(calls.length).toBe(before)
  expect((await raw('')).status).toBe(400)
  expect((await raw('x'.repeat(2 * 1024 * 1024))).status).toBe(413)
  // Malformed batches are the caller's to fix: 400 RPC_MALFORMED, with the request id, and nothing runs.
  for (const body of ['hello', '["push",', '["foo",1]', '["pull",99]', '["push",["pipeline",-5,["whoAmI"],[]]]\n["pull",1]']) {
    const res = await raw(body)
    expect(res.status, body.slice(0, 40)).toBe(400)
    const e = ((await res.json()) as { error: { code: string; requestId: string } }).error
    expect(e.code).toBe('RPC_MALFORMED')
    expect(e.requestId).toBeTruthy()
  }
  expect(calls.length).toBe(before)
  // An argument nested past the limit, as Cap'n Web's own client sends it: a 400, not a 500.
  let deep: unknown = 1
  for (let i = 0; i < 80; i++) deep = [deep]
  const statusCount = async (status: number) => {
    const text = await (await fetch(`${app.url}/metrics`)).text()
    return Number(new RegExp(`onepipe_http_requests_total\\{method="POST",route="/rpc/pipeline",status="${status}"\\} (\\d+)`).exec(text)?.[1] ?? 0)
  }
  const [fours, fives] = [await statusCount(400), await statusCount(500)]
  await expect(session().getUser(deep as string)).rejects.toThrow()
  expect(await statusCount(400)).toBe(fours + 1)
  expect(await statusCount(500)).toBe(fives)
  expect(calls.length).toBe(before)
  expect(() => RPC.create('bad').expose({ constructor: async () => 1 })).toThrow(ConfigError)
  expect(() => RPC.create('bad').expose({ then: async () => 1 })).toThrow(ConfigError)
  expect(() => RPC.create('bad').build()).toThrow(ConfigError)
})
