// The conformance suite of OnePipe's worker protocol, written from
// docs/protocol/workers.md alone, as an implementer in another language
// would read it. Plain ESM on Node built-ins so it runs against any control
// plane (npx onepipe-workers-conformance) without installing anything.
//
// Every case uses handler names with a random suffix: a real deployment's
// workers never pull these jobs and the suite never takes theirs. Pipelines
// a case creates are cancelled when it ends, so none stay Running.
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'

const MiB = 1024 * 1024
const BODY_LIMIT = MiB + 16 * 1024
const STAGE_STATUSES = ['NotStarted', 'Pending', 'Running', 'RetryScheduled', 'AwaitingApproval', 'Completed', 'Failed', 'Skipped', 'Cancelled']
const FINAL_STAGE = ['Completed', 'Failed', 'Skipped', 'Cancelled']

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * @param {{ baseUrl: string, apiKey: string, otherApiKey: string, log?: (line: string) => void, only?: string, concurrency?: number, caseTimeoutMs?: number }} o
 * @returns {Promise<{ passed: number, failed: { name: string, error: string }[] }>}
 */
export async function runConformance({ baseUrl, apiKey, otherApiKey, log = () => {}, only, concurrency = 4, caseTimeoutMs = 180_000 }) {
  assert.ok(baseUrl, 'baseUrl is required')
  assert.ok(apiKey, 'apiKey is required')
  assert.ok(otherApiKey, 'otherApiKey is required')
  const base = baseUrl.replace(/\/+$/, '')
  const run = randomBytes(4).toString('hex')
  const selected = CASES.filter(([name]) => !only || name.includes(only))
  const failed = []
  let passed = 0
  let next = 0
  const worker = async () => {
    while (next < selected.length) {
      const index = next++
      const [name, fn] = selected[index]
      const ctx = caseContext(base, apiKey, otherApiKey, `cf${run}c${index}`)
      let timer
      try {
        await Promise.race([
          fn(ctx),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`case did not finish within ${caseTimeoutMs} ms`)), caseTimeoutMs)
          }),
        ])
        passed++
        log(`ok ${name}`)
      } catch (e) {
        const error = describe(e)
        failed.push({ name, error })
        log(`FAIL ${name}: ${error}`)
      } finally {
        clearTimeout(timer)
        await ctx.cleanup()
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, selected.length)) }, worker))
  return { passed, failed }
}

function describe(e) {
  if (e instanceof assert.AssertionError) {
    // The generated diff is long and multi-line; one line per failure reads better in a CLI.
    const detail = e.generatedMessage ? `expected ${short(e.expected)}, got ${short(e.actual)}` : e.message
    return detail.replace(/\s+/g, ' ')
  }
  return (e instanceof Error ? `${e.message}` : String(e)).replace(/\s+/g, ' ')
}

function short(v) {
  const s = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v)
  return s.length > 300 ? `${s.slice(0, 300)}…` : s
}

// ---------------------------------------------------------------- HTTP

function caseContext(base, keyA, keyB, prefix) {
  const created = new Set()
  const request = async (cred, method, path, body, headers = {}, timeoutMs = 60_000) => {
    const auth = cred == null ? {} : cred.startsWith('ows_') ? { authorization: `Bearer ${cred}` } : { 'x-api-key': cred }
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    })
    const text = await res.text()
    let json
    try {
      json = text ? JSON.parse(text) : undefined
    } catch {
      json = undefined
    }
    if (method === 'POST' && path === '/pipelines' && res.status === 201 && json?.pipelineId && cred === keyA) created.add(json.pipelineId)
    return { status: res.status, body: json, text, headers: res.headers }
  }
  const ctx = {
    keyA,
    keyB,
    /** A handler name of this case only: `<prefix>.<tag>` starts with a letter and uses [A-Za-z0-9.]. */
    h: (tag) => `${prefix}.${tag}`,
    request,
    A: (method, path, body, headers) => request(keyA, method, path, body, headers),
    B: (method, path, body, headers) => request(keyB, method, path, body, headers),
    async create(def, key = keyA, headers = {}) {
      const r = await request(key, 'POST', '/pipelines', def, headers)
      expectStatus(r, 201, 'POST /pipelines')
      assert.equal(typeof r.body.pipelineId, 'string', 'POST /pipelines answers a pipelineId')
      if (key !== keyA) created.add(`${key}\n${r.body.pipelineId}`)
      return r.body
    },
    async get(pipelineId, key = keyA) {
      const r = await request(key, 'GET', `/pipelines/${pipelineId}`)
      expectStatus(r, 200, `GET /pipelines/${pipelineId}`)
      return r.body
    },
    async stage(pipelineId, name) {
      const p = await ctx.get(pipelineId)
      const s = p.stages.find((x) => x.name === name)
      assert.ok(s, `stage ${name} in GET /pipelines/{id} (stages: ${p.stages.map((x) => x.name).join(', ')})`)
      return s
    },
    /** Jobs for handlers ([] on 204); asserts the answer's shape. */
    async pull(handlers, { max, waitMs = 0, key = keyA, extra = {} } = {}) {
      const r = await request(key, 'POST', '/jobs/pull', { handlers: [handlers].flat(), ...(max === undefined ? {} : { max }), waitMs, ...extra }, {}, waitMs + 60_000)
      if (r.status === 204) {
        assert.equal(r.text, '', 'a 204 pull has no body')
        return []
      }
      expectStatus(r, 200, 'POST /jobs/pull')
      assert.ok(Array.isArray(r.body?.jobs) && r.body.jobs.length > 0, `a 200 pull carries jobs: ${short(r.body)}`)
      return r.body.jobs
    },
    /** The one job of handler, waiting up to waitMs for it. */
    async pullOne(handler, { waitMs = 20_000, key = keyA } = {}) {
      const deadline = Date.now() + waitMs
      for (;;) {
        const left = deadline - Date.now()
        const jobs = await ctx.pull(handler, { waitMs: Math.max(0, Math.min(left, 20_000)), key })
        if (jobs.length > 0) {
          assert.equal(jobs.length, 1, 'a pull without max answers one job (max defaults to 1)')
          return jobs[0]
        }
        if (Date.now() >= deadline) throw new Error(`no job for ${handler} within ${waitMs} ms`)
      }
    },
    async nothingFor(handler, waitMs = 1000, key = keyA) {
      const jobs = await ctx.pull(handler, { waitMs, key })
      assert.equal(jobs.length, 0, `no job for ${handler} yet, got ${short(jobs.map((j) => j.stageName))}`)
    },
    async ack(body, key = keyA) {
      return request(key, 'POST', '/jobs/ack', body)
    },
    async complete(job, output = { ok: true }, extra = {}) {
      const r = await ctx.ack({ executionId: job.executionId, status: 'completed', output, ...extra })
      expectStatus(r, 200, `completed ack of ${job.stageName}`)
      assert.equal(r.body.stageStatus, 'Completed')
      return r.body
    },
    /** Polls until check(pipeline) is truthy; the machine may be slow, so deadlines are generous. */
    async until(pipelineId, check, what, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs
      let last
      for (;;) {
        last = await ctx.get(pipelineId)
        if (check(last)) return last
        if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms; last: ${short(summary(last))}`)
        await sleep(200)
      }
    },
    async cleanup() {
      await Promise.all(
        [...created].map(async (entry) => {
          const [key, id] = entry.includes('\n') ? entry.split('\n') : [keyA, entry]
          await request(key, 'POST', `/pipelines/${id}/cancel`, undefined, {}, 10_000).catch(() => {})
        }),
      )
    },
  }
  return ctx
}

function summary(p) {
  return p && { status: p.status, stages: (p.stages ?? []).map((s) => `${s.name}:${s.status}#${s.attempt}`) }
}

function expectStatus(r, status, what) {
  const statuses = [status].flat()
  if (!statuses.includes(r.status)) {
    throw new assert.AssertionError({ message: `${what}: expected HTTP ${statuses.join(' or ')}, got ${r.status} ${short(r.body ?? r.text)}` })
  }
}

function expectError(r, status, what, code) {
  expectStatus(r, status, what)
  const e = r.body?.error
  assert.ok(e && typeof e === 'object', `${what}: the body is { error: … }, got ${short(r.body ?? r.text)}`)
  assert.equal(typeof e.code, 'string', `${what}: error.code`)
  assert.equal(typeof e.message, 'string', `${what}: error.message`)
  assert.ok(typeof e.requestId === 'string' && e.requestId.length > 0, `${what}: error.requestId`)
  if (code) assert.equal(e.code, code, `${what}: error.code`)
  return e
}

/** The field paths of a 400; the page names `details.issues` but not each issue's shape, so both a dotted string and an array of segments are read. */
function issuePaths(r) {
  const issues = r.body?.error?.details?.issues
  assert.ok(Array.isArray(issues), `a 400 carries error.details.issues, got ${short(r.body)}`)
  return issues.map((i) => (typeof i === 'string' ? i : Array.isArray(i?.path) ? i.path.join('.') : String(i?.path ?? '')))
}

function expectIssue(r, what, match) {
  expectError(r, 400, what)
  const paths = issuePaths(r)
  const ok = paths.some((p) => (typeof match === 'string' ? p === match : match.test(p)))
  assert.ok(ok, `${what}: a path ${match} in details.issues, got ${short(paths)}`)
}

const stage = (name, handler, options, extra = {}) => ({ stageName: name, stageHandlerName: handler, ...extra, ...(options ? { options } : {}) })

const byName = (p, name) => p.stages.find((s) => s.name === name)

// ---------------------------------------------------------------- cases

/** @type {[string, (ctx: ReturnType<typeof caseContext>) => Promise<void>][]} */
const CASES = [
  // -------------------------------------------------------------- auth
  [
    'auth: no credentials is a 401 with a JSON error body',
    async (c) => {
      for (const [method, path, body] of [
        ['POST', '/jobs/pull', { handlers: [c.h('x')], waitMs: 0 }],
        ['POST', '/pipelines', { name: 'x', stages: [stage('a', c.h('a'))] }],
        ['GET', `/pipelines/${randomUUID()}`],
        ['POST', '/workers/bootstrap', { name: 'w', handlers: [c.h('x')], concurrency: 1 }],
      ]) {
        const r = await c.request(null, method, path, body)
        expectError(r, 401, `${method} ${path} without a key`)
        assert.match(r.headers.get('content-type') ?? '', /application\/json/, 'a 401 is JSON')
      }
    },
  ],
  [
    'auth: a bad API key or session token is a 401',
    async (c) => {
      for (const key of ['op_nope_notasecret', `${c.keyA}x`, 'garbage']) {
        expectError(await c.request(key, 'POST', '/jobs/pull', { handlers: [c.h('x')], waitMs: 0 }), 401, `pull with key ${key.slice(0, 8)}…`)
      }
      expectError(await c.request('ows_notatoken', 'POST', '/workers/heartbeat', { inFlight: 0 }), 401, 'heartbeat with a made-up session token')
    },
  ],
  [
    "auth: another application's pipeline is a 404 for every pipeline route",
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'mine', stages: [stage('a', h), stage('b', h, { dependsOn: ['a'] })] })
      const full = await c.get(p.pipelineId)
      const a = byName(full, 'a')
      expectError(await c.B('GET', `/pipelines/${p.pipelineId}`), 404, 'GET of another application’s pipeline')
      expectError(await c.B('GET', `/pipelines/${p.pipelineId}/logs`), 404, 'GET logs of another application’s pipeline')
      expectError(await c.B('POST', `/pipelines/${p.pipelineId}/cancel`), 404, 'cancel of another application’s pipeline')
      expectError(await c.B('POST', `/pipelines/${p.pipelineId}/stages`, { stages: [stage('z', h)] }), 404, 'append to another application’s pipeline')
      expectError(await c.B('POST', `/stages/${a.id}/skip`), 404, 'skip of another application’s stage')
      expectError(await c.B('POST', `/stages/${a.id}/rerun`, {}), 404, 'rerun of another application’s stage')
      expectError(await c.B('POST', `/stages/${a.id}/resume`, { decision: 'approved', reason: 'x' }), 404, 'resume of another application’s stage')
      const list = await c.B('GET', '/pipelines?limit=100')
      expectStatus(list, 200, 'GET /pipelines')
      assert.ok(!list.body.pipelines.some((x) => x.pipelineId === p.pipelineId), 'another application’s list does not show the pipeline')
      const after = await c.get(p.pipelineId)
      assert.equal(after.status, 'Running', 'nothing the other application did changed the pipeline')
      assert.equal(byName(after, 'a').status, 'Pending')
    },
  ],
  [
    "auth: another application's key gets no job of this application's handlers",
    async (c) => {
      const h = c.h('a')
      await c.create({ name: 'mine', stages: [stage('a', h)] })
      const r = await c.request(c.keyB, 'POST', '/jobs/pull', { handlers: [h], waitMs: 1000 })
      // The page says "another application's handler a 403", while handler names are not registered anywhere:
      // either answer keeps the job away from the other application, which is what matters.
      assert.ok([204, 403].includes(r.status), `another application's pull: 204 or 403, got ${r.status} ${short(r.body)}`)
      const job = await c.pullOne(h)
      assert.equal(job.attempt, 1, 'the job was not taken by the other application')
      await c.complete(job)
    },
  ],
  [
    "auth: ack, renew and logs of another application's attempt are a 404 and change nothing",
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'mine', stages: [stage('a', h)] })
      const job = await c.pullOne(h)
      expectError(await c.ack({ executionId: job.executionId, status: 'completed', output: 1 }, c.keyB), 404, 'ack by another application')
      expectError(await c.ack({ executionId: job.executionId, status: 'failed', error: { message: 'x', retryable: false } }, c.keyB), 404, 'failed ack by another application')
      expectError(await c.B('POST', '/jobs/lease/renew', { executionId: job.executionId }), 404, 'renew by another application')
      expectError(
        await c.B('POST', '/logs', { executionId: job.executionId, entries: [{ level: 'info', message: 'intruder', at: new Date().toISOString() }] }),
        404,
        'logs of another application’s attempt',
      )
      expectError(
        await c.B('POST', '/logs', { pipelineId: p.pipelineId, entries: [{ level: 'info', message: 'intruder', at: new Date().toISOString() }] }),
        404,
        'logs of another application’s pipeline',
      )
      const batch = await c.B('POST', '/jobs/ack', { acks: [{ executionId: job.executionId, status: 'completed', output: 1 }] })
      expectStatus(batch, 200, 'batch ack by another application')
      assert.equal(batch.body.results[0].status, 404, 'the batch item of another application is a 404')
      assert.equal(byName(await c.get(p.pipelineId), 'a').status, 'Running')
      await c.complete(job)
      const logs = await c.A('GET', `/pipelines/${p.pipelineId}/logs`)
      assert.ok(!logs.body.logs.some((l) => l.message === 'intruder'), 'the other application’s log lines were not stored')
    },
  ],

  // -------------------------------------------------------------- POST /pipelines
  [
    'POST /pipelines: 201 with the pipeline id, its status and its stages with their statuses',
    async (c) => {
      const h = c.h('a')
      const p = await c.create({
        name: 'shape',
        keywords: ['conformance'],
        context: { customer: 'acme' },
        input: { n: 1 },
        stages: [stage('a', h), stage('b', h, { dependsOn: ['a'] })],
      })
      assert.equal(p.status, 'Running')
      assert.ok(Array.isArray(p.stages) && p.stages.length === 2, `two stages in the 201, got ${short(p.stages)}`)
      // The page does not spell the 201's stage entries; GET's names them `name`, so `stageName` is read too.
      const st = (n) => p.stages.find((s) => (s.name ?? s.stageName) === n)
      assert.equal(st('a')?.status, 'Pending', 'a stage without dependencies is Pending')
      assert.equal(st('b')?.status, 'NotStarted', 'a stage waiting for its dependencies is NotStarted')
      const full = await c.get(p.pipelineId)
      assert.equal(full.pipelineId, p.pipelineId)
      assert.equal(full.name, 'shape')
      assert.deepEqual(full.keywords, ['conformance'])
      assert.deepEqual(full.input, { n: 1 })
      assert.equal(full.context.customer, 'acme')
      for (const k of ['createdAt', 'updatedAt']) assert.ok(!Number.isNaN(Date.parse(full[k])), `${k} is an ISO time`)
      assert.equal(full.finishedAt ?? null, null, 'a running pipeline has no finishedAt')
      const a = byName(full, 'a')
      const b = byName(full, 'b')
      assert.equal(a.handler, h)
      assert.deepEqual(b.dependsOn, ['a'])
      for (const s of full.stages) {
        assert.ok(STAGE_STATUSES.includes(s.status), `a known stage status, got ${s.status}`)
        assert.equal(typeof s.id, 'string')
        assert.ok(Array.isArray(s.attempts), 'stages carry their attempts')
      }
    },
  ],
  [
    'POST /pipelines: Idempotency-Key with the same body is a 200 with the same pipeline, with another body a 409',
    async (c) => {
      const h = c.h('a')
      const key = `conformance-${randomUUID()}`
      const def = { name: 'idem', stages: [stage('a', h)] }
      const first = await c.A('POST', '/pipelines', def, { 'idempotency-key': key })
      expectStatus(first, 201, 'the first create')
      const again = await c.A('POST', '/pipelines', def, { 'idempotency-key': key })
      expectStatus(again, 200, 'the same key and body again')
      assert.equal(again.body.pipelineId, first.body.pipelineId, 'the same pipeline')
      const other = await c.A('POST', '/pipelines', { ...def, input: { other: true } }, { 'idempotency-key': key })
      expectError(other, 409, 'the same key with another body')
      // A key is the caller's: another application sending the same key must not see this pipeline.
      const b = await c.B('POST', '/pipelines', def, { 'idempotency-key': key })
      expectStatus(b, 201, 'another application with the same key')
      assert.notEqual(b.body.pipelineId, first.body.pipelineId, 'another application gets its own pipeline')
      await c.request(c.keyB, 'POST', `/pipelines/${b.body.pipelineId}/cancel`)
      const jobs = await c.pull(h, { max: 10, waitMs: 1000 })
      assert.equal(jobs.length, 1, 'only one pipeline was created for the key')
    },
  ],
  [
    'POST /pipelines: invalid definitions are a 400 naming the field, and nothing is created',
    async (c) => {
      const h = c.h('a')
      const cases = [
        ['an invalid handler name', { name: 'x', stages: [stage('a', '9 bad handler')] }, 'stages.0.stageHandlerName'],
        ['a handler name over 128 characters', { name: 'x', stages: [stage('a', `a${'b'.repeat(128)}`)] }, 'stages.0.stageHandlerName'],
        ['a cycle', { name: 'x', stages: [stage('a', h, { dependsOn: ['b'] }), stage('b', h, { dependsOn: ['a'] })] }, /^stages\.[01]\.options\.dependsOn(\.0)?$/],
        ['a stage depending on itself', { name: 'x', stages: [stage('a', h, { dependsOn: ['a'] })] }, /^stages\.0\.options\.dependsOn(\.0)?$/],
        ['an unknown dependsOn', { name: 'x', stages: [stage('a', h), stage('b', h, { dependsOn: ['zz'] })] }, 'stages.1.options.dependsOn.0'],
        ['an unknown runInParallelWith', { name: 'x', stages: [stage('a', h, { runInParallelWith: ['zz'] })] }, /^stages\.0\.options\.runInParallelWith(\.0)?$/],
        ['a duplicate stage name', { name: 'x', stages: [stage('a', h), stage('a', h)] }, /^stages\.[01]\.stageName$/],
        ['a negative timeOut', { name: 'x', stages: [stage('a', h, { timeOut: -5 })] }, 'stages.0.options.timeOut'],
        ['a negative maxRetries', { name: 'x', stages: [stage('a', h, { maxRetries: -1 })] }, 'stages.0.options.maxRetries'],
        ['an unknown option', { name: 'x', stages: [stage('a', h, { retries: 3 })] }, /^stages\.0\.options(\.retries)?$/],
        ['no stages', { name: 'x', stages: [] }, 'stages'],
      ]
      for (const [what, def, path] of cases) {
        expectIssue(await c.A('POST', '/pipelines', def), what, path)
      }
      await c.nothingFor(h, 500)
    },
  ],
  [
    'POST /pipelines: malformed JSON is a 400',
    async (c) => {
      expectError(await c.A('POST', '/pipelines', '{"name": "x", "stages": ['), 400, 'malformed JSON')
      expectError(await c.A('POST', '/jobs/ack', '{"executionId":'), 400, 'malformed JSON on /jobs/ack')
    },
  ],
  [
    'bodies: over 1 MiB + 16 KiB is a 413, just under 1 MiB is accepted',
    async (c) => {
      const h = c.h('a')
      const big = JSON.stringify({ name: 'big', input: 'x'.repeat(BODY_LIMIT + 1024), stages: [stage('a', h)] })
      expectError(await c.A('POST', '/pipelines', big), 413, 'a body over the limit')
      await c.nothingFor(h, 300)
      const fits = JSON.stringify({ name: 'fits', input: 'x'.repeat(MiB - 4096), stages: [stage('a', h)] })
      assert.ok(Buffer.byteLength(fits) < MiB)
      const r = await c.A('POST', '/pipelines', fits)
      expectStatus(r, 201, 'a body just under 1 MiB')
      const job = await c.pullOne(h)
      assert.equal(job.input.length, MiB - 4096, 'the job carries the whole input')
      await c.complete(job)
    },
  ],

  // -------------------------------------------------------------- pull
  [
    'pull: bad requests are a 400 naming the field',
    async (c) => {
      expectIssue(await c.A('POST', '/jobs/pull', { handlers: [] }), 'no handlers', 'handlers')
      expectIssue(await c.A('POST', '/jobs/pull', { handlers: ['9 bad'] }), 'a bad handler name', /^handlers(\.0)?$/)
      expectIssue(await c.A('POST', '/jobs/pull', { handlers: Array.from({ length: 101 }, (_, i) => c.h(`x${i}`)) }), '101 handlers', 'handlers')
      expectIssue(await c.A('POST', '/jobs/pull', { handlers: [c.h('a')], max: 0 }), 'max 0', 'max')
      expectIssue(await c.A('POST', '/jobs/pull', { handlers: [c.h('a')], max: 101 }), 'max 101', 'max')
      expectIssue(await c.A('POST', '/jobs/pull', { handlers: [c.h('a')], waitMs: -1 }), 'a negative waitMs', 'waitMs')
    },
  ],
  [
    'pull: no job is a 204 with no body after waitMs (or wait in seconds), and a waitMs above maxWaitMs is accepted',
    async (c) => {
      const h = c.h('none')
      let t = performance.now()
      const r = await c.A('POST', '/jobs/pull', { handlers: [h], waitMs: 1500 })
      let took = performance.now() - t
      expectStatus(r, 204, 'a pull with nothing to do')
      assert.equal(r.text, '')
      assert.ok(took >= 1200, `the pull parked about waitMs (1500), answered after ${Math.round(took)} ms`)
      t = performance.now()
      expectStatus(await c.A('POST', '/jobs/pull', { handlers: [h], wait: 1 }), 204, 'a pull with wait in seconds')
      took = performance.now() - t
      assert.ok(took >= 700, `wait: 1 parked about a second, answered after ${Math.round(took)} ms`)
      expectStatus(await c.A('POST', '/jobs/pull', { handlers: [h], waitMs: 0 }), 204, 'waitMs 0')
      // Cut to maxWaitMs rather than refused; a job made ready meanwhile ends the wait without waiting maxWaitMs.
      const parked = c.pull(h, { waitMs: 10 * 60 * 60 * 1000 })
      await sleep(500)
      await c.create({ name: 'wake', stages: [stage('a', h)] })
      const jobs = await parked
      assert.equal(jobs.length, 1, 'the long pull was accepted and answered by the job')
      await c.complete(jobs[0])
    },
  ],
  [
    'pull: a parked pull answers as soon as a job becomes ready',
    async (c) => {
      const h = c.h('park')
      const t = performance.now()
      const parked = c.request(c.keyA, 'POST', '/jobs/pull', { handlers: [c.h('other'), h], waitMs: 25_000 }, {}, 90_000)
      await sleep(1000)
      const p = await c.create({ name: 'wake', stages: [stage('a', h)] })
      const r = await parked
      const took = performance.now() - t
      expectStatus(r, 200, 'the parked pull (a 204 means it waited out waitMs instead of answering the job)')
      assert.equal(r.body.jobs.length, 1)
      assert.equal(r.body.jobs[0].pipelineId, p.pipelineId)
      assert.ok(took < 24_000, `answered before waitMs ran out (${Math.round(took)} ms)`)
      await c.complete(r.body.jobs[0])
    },
  ],
  [
    'pull: max bounds the jobs of one answer, and max defaults to 1',
    async (c) => {
      const h = c.h('many')
      for (let i = 0; i < 4; i++) await c.create({ name: `m${i}`, stages: [stage('a', h)] })
      const one = await c.pull(h, { waitMs: 5000 })
      assert.equal(one.length, 1, 'no max: one job')
      const two = await c.pull(h, { max: 2, waitMs: 5000 })
      assert.ok(two.length >= 1 && two.length <= 2, `max 2: 1 or 2 jobs, got ${two.length}`)
      const rest = []
      const deadline = Date.now() + 20_000
      while (one.length + two.length + rest.length < 4 && Date.now() < deadline) {
        const got = await c.pull(h, { max: 100, waitMs: 2000 })
        assert.ok(got.length <= 4)
        rest.push(...got)
      }
      const all = [...one, ...two, ...rest]
      assert.equal(all.length, 4, 'every ready job is pulled once')
      assert.equal(new Set(all.map((j) => j.executionId)).size, 4, 'no job is handed out twice')
      await c.nothingFor(h, 500)
      for (const j of all) await c.complete(j)
    },
  ],

  // -------------------------------------------------------------- job shape
  [
    'job: the fields of a pulled job, with and without a timeout',
    async (c) => {
      const h = c.h('shape')
      const ht = c.h('timed')
      const p = await c.create({
        name: 'shape',
        context: { customer: 'acme' },
        input: { from: 'pipeline' },
        stages: [stage('own', h, undefined, { input: { from: 'stage' } }), stage('inherits', ht, { timeOut: 120_000 })],
      })
      const job = await c.pullOne(h)
      assert.equal(typeof job.executionId, 'string')
      assert.equal(job.pipelineId, p.pipelineId)
      assert.equal(job.stageName, 'own')
      assert.equal(job.handler, h)
      assert.equal(job.attempt, 1)
      assert.deepEqual(job.input, { from: 'stage' }, 'a stage with its own input gets it')
      assert.deepEqual(job.upstream, {}, 'a first stage has no upstream outputs')
      assert.equal(job.context.customer, 'acme')
      assert.ok(Number.isInteger(job.leaseMs) && job.leaseMs > 0, `leaseMs, got ${job.leaseMs}`)
      assert.ok(!Number.isNaN(Date.parse(job.leaseExpiresAt)), `leaseExpiresAt is an ISO time, got ${job.leaseExpiresAt}`)
      assert.equal(job.deadline, undefined, 'no deadline without a timeout')
      assert.equal(job.deadlineInMs, undefined, 'no deadlineInMs without a timeout')
      const full = await c.get(p.pipelineId)
      assert.equal(job.stageId, byName(full, 'own').id)
      assert.equal(byName(full, 'own').status, 'Running')
      assert.equal(byName(full, 'own').executionId, job.executionId)
      await c.complete(job)
      const timed = await c.pullOne(ht)
      assert.deepEqual(timed.input, { from: 'pipeline' }, 'a stage without its own input gets the pipeline’s')
      assert.ok(!Number.isNaN(Date.parse(timed.deadline)), `deadline is an ISO time, got ${timed.deadline}`)
      assert.ok(typeof timed.deadlineInMs === 'number' && timed.deadlineInMs > 0 && timed.deadlineInMs <= 120_000, `0 < deadlineInMs <= timeOut, got ${timed.deadlineInMs}`)
      await c.complete(timed)
    },
  ],

  // -------------------------------------------------------------- ack
  [
    'ack completed: 200 { stageStatus: Completed }, the output is stored and the pipeline completes',
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'done', stages: [stage('a', h)] })
      const job = await c.pullOne(h)
      const r = await c.ack({ executionId: job.executionId, status: 'completed', output: { answer: 42, list: [1, 'two', null] } })
      expectStatus(r, 200, 'the ack')
      assert.deepEqual(r.body, { stageStatus: 'Completed' })
      const done = await c.until(p.pipelineId, (x) => x.status === 'Completed', 'the pipeline completes')
      const a = byName(done, 'a')
      assert.deepEqual(a.output, { answer: 42, list: [1, 'two', null] })
      assert.ok(!Number.isNaN(Date.parse(done.finishedAt)), 'a finished pipeline has finishedAt')
      assert.equal(a.attempts.length, 1)
      assert.equal(a.attempts[0].executionId, job.executionId)
      // The attempt is over once acked, so a second ack is refused and changes nothing.
      expectError(await c.ack({ executionId: job.executionId, status: 'failed', error: { message: 'late', retryable: false } }), 409, 'an ack of an acked attempt', 'STALE_ATTEMPT')
      assert.equal(byName(await c.get(p.pipelineId), 'a').status, 'Completed')
    },
  ],
  [
    'ack failed: with no retries left the stage and the pipeline fail, with the error stored',
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'fail', stages: [stage('a', h, { maxRetries: 0 }), stage('b', h, { dependsOn: ['a'] })] })
      const job = await c.pullOne(h)
      const r = await c.ack({ executionId: job.executionId, status: 'failed', error: { message: 'boom', code: 'E_BOOM', retryable: true } })
      expectStatus(r, 200, 'the failed ack')
      assert.deepEqual(r.body, { stageStatus: 'Failed' })
      const done = await c.until(p.pipelineId, (x) => x.status === 'Failed', 'the pipeline fails')
      const a = byName(done, 'a')
      assert.equal(a.status, 'Failed')
      assert.equal(a.error?.message, 'boom')
      assert.equal(a.error?.code, 'E_BOOM')
      assert.notEqual(byName(done, 'b').status, 'Completed')
      await c.nothingFor(h, 500)
    },
  ],
  [
    'ack released: the stage is ready again at once, no retry is spent, the old executionId is stale',
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'release', stages: [stage('a', h, { maxRetries: 0 })] })
      const first = await c.pullOne(h)
      const r = await c.ack({ executionId: first.executionId, status: 'released' })
      expectStatus(r, 200, 'the release')
      assert.equal(r.body.stageStatus, 'Pending', 'a released stage is ready again')
      const second = await c.pullOne(h, { waitMs: 5000 })
      assert.notEqual(second.executionId, first.executionId, 'a new attempt has a new executionId')
      assert.equal(second.attempt, 1, 'a release does not count as a retry')
      expectError(await c.ack({ executionId: first.executionId, status: 'completed', output: 1 }), 409, 'an ack of the released attempt', 'STALE_ATTEMPT')
      // maxRetries 0: a spent retry would make this failure final, a release must not have.
      await c.complete(second)
      assert.equal((await c.get(p.pipelineId)).status, 'Completed')
    },
  ],
  [
    'retries: maxRetries attempts after the first, each with a new executionId; the stale one is a 409 for ack and renew',
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'retry', stages: [stage('a', h, { maxRetries: 2, retryInterval: 300 })] })
      const seen = []
      for (let attempt = 1; attempt <= 3; attempt++) {
        const job = await c.pullOne(h)
        assert.equal(job.attempt, attempt, 'attempt counts from 1')
        assert.ok(!seen.includes(job.executionId), 'every attempt has its own executionId')
        seen.push(job.executionId)
        if (attempt > 1) {
          const stale = seen[attempt - 2]
          expectError(await c.ack({ executionId: stale, status: 'completed', output: 1 }), 409, 'an ack of the previous attempt', 'STALE_ATTEMPT')
          expectError(await c.A('POST', '/jobs/lease/renew', { executionId: stale }), 409, 'a renew of the previous attempt', 'STALE_ATTEMPT')
        }
        const r = await c.ack({ executionId: job.executionId, status: 'failed', error: { message: `fail ${attempt}` } })
        expectStatus(r, 200, `failed ack ${attempt}`)
        assert.equal(r.body.stageStatus, attempt < 3 ? 'RetryScheduled' : 'Failed')
        if (attempt < 3) {
          const s = byName(await c.get(p.pipelineId), 'a')
          assert.ok(['RetryScheduled', 'Pending', 'Running'].includes(s.status), `between attempts: ${s.status}`)
        }
      }
      const done = await c.until(p.pipelineId, (x) => x.status === 'Failed', 'the pipeline fails after its retries')
      assert.equal(byName(done, 'a').attempts.length, 3)
      await c.nothingFor(h, 1000)
    },
  ],
  [
    'retries: retryable:false fails the stage at once whatever maxRetries',
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'permanent', stages: [stage('a', h, { maxRetries: 5, retryInterval: 100 })] })
      const job = await c.pullOne(h)
      const r = await c.ack({ executionId: job.executionId, status: 'failed', error: { message: 'bad input', code: 'E_INPUT', retryable: false } })
      expectStatus(r, 200, 'the permanent failure')
      assert.equal(r.body.stageStatus, 'Failed')
      await c.until(p.pipelineId, (x) => x.status === 'Failed', 'the pipeline fails')
      await c.nothingFor(h, 1000)
    },
  ],
  [
    'ack: an unknown executionId is a 404, a refused completed ack leaves the attempt current',
    async (c) => {
      expectError(await c.ack({ executionId: randomUUID(), status: 'completed', output: 1 }), 404, 'an ack of an unknown attempt')
      expectError(await c.A('POST', '/jobs/lease/renew', { executionId: randomUUID() }), 404, 'a renew of an unknown attempt')
      const h = c.h('a')
      const p = await c.create({ name: 'refused', stages: [stage('a', h, { maxRetries: 0 })] })
      const job = await c.pullOne(h)
      expectError(await c.ack({ executionId: job.executionId, status: 'completed', output: { s: 'nul\u0000' } }), 400, 'an output that is not plain JSON')
      expectError(await c.ack({ executionId: job.executionId, status: 'completed', output: 'x'.repeat(BODY_LIMIT) }), 413, 'an output over the body limit')
      expectError(await c.ack({ executionId: job.executionId, status: 'completed', output: 1, context: { ['k'.repeat(257)]: 1 } }), 400, 'a context key over 256 characters')
      const lines = Array.from({ length: 1001 }, (_, i) => ({ level: 'info', message: `l${i}`, at: new Date().toISOString() }))
      expectError(await c.ack({ executionId: job.executionId, status: 'completed', output: 1, logs: lines }), 400, '1001 log lines')
      expectError(await c.ack({ executionId: job.executionId, status: 'failed', error: { message: 'm'.repeat(8193) } }), 400, 'an error.message over 8192')
      expectError(await c.ack({ executionId: job.executionId, status: 'failed', error: { message: 'm', code: 'c'.repeat(129) } }), 400, 'an error.code over 128')
      expectError(await c.ack({ executionId: job.executionId, status: 'done' }), 400, 'an unknown status')
      assert.equal(byName(await c.get(p.pipelineId), 'a').status, 'Running', 'refused acks change nothing')
      const r = await c.ack({ executionId: job.executionId, status: 'failed', error: { message: 'output too large', retryable: false } })
      expectStatus(r, 200, 'the failure sent after a refused completed ack')
      assert.equal(r.body.stageStatus, 'Failed')
    },
  ],

  // -------------------------------------------------------------- leases
  [
    'renew: 200 with a later leaseExpiresAt, and a renewed job outlives its first lease',
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'renew', stages: [stage('a', h, { maxRetries: 0 })] })
      const job = await c.pullOne(h)
      await sleep(1100)
      const r = await c.A('POST', '/jobs/lease/renew', { executionId: job.executionId })
      expectStatus(r, 200, 'the renew')
      assert.ok(Date.parse(r.body.leaseExpiresAt) > Date.parse(job.leaseExpiresAt), `the lease moves on: ${job.leaseExpiresAt} → ${r.body.leaseExpiresAt}`)
      // Outliving the first lease takes leaseMs of waiting; only done when the control plane's lease is short.
      if (job.leaseMs <= 10_000) {
        const until = Date.now() + job.leaseMs * 2
        while (Date.now() < until) {
          await sleep(Math.max(200, job.leaseMs / 4))
          expectStatus(await c.A('POST', '/jobs/lease/renew', { executionId: job.executionId }), 200, 'a renew')
        }
        const s = byName(await c.get(p.pipelineId), 'a')
        assert.equal(s.status, 'Running')
        assert.equal(s.executionId, job.executionId, 'still the same attempt')
      }
      await c.complete(job)
    },
  ],
  [
    'lease: an unrenewed lease runs out, the stage comes back with a new executionId and the old one is a 409',
    async (c) => {
      const h = c.h('a')
      // A lost lease does not count as a retry, so the stage comes back even with maxRetries 0.
      const p = await c.create({ name: 'lapse', stages: [stage('a', h, { maxRetries: 0 })] })
      const first = await c.pullOne(h)
      const second = await c.pullOne(h, { waitMs: first.leaseMs + 20_000 })
      assert.notEqual(second.executionId, first.executionId)
      // The page says a lost lease "does not count as a retry" without saying whether `attempt` still
      // moves on; the stage coming back under maxRetries 0 is what shows no retry was spent.
      assert.ok(second.attempt >= 1, `attempt, got ${second.attempt}`)
      expectError(await c.ack({ executionId: first.executionId, status: 'completed', output: 1 }), 409, 'an ack of the expired attempt', 'STALE_ATTEMPT')
      expectError(await c.A('POST', '/jobs/lease/renew', { executionId: first.executionId }), 409, 'a renew of the expired attempt', 'STALE_ATTEMPT')
      await c.complete(second)
      assert.equal((await c.get(p.pipelineId)).status, 'Completed')
    },
  ],
  [
    "timeout: the stage's timeOut ends the attempt, it is retried by its policy, the late ack is a 409",
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'timeout', stages: [stage('a', h, { timeOut: 1500, maxRetries: 1, retryInterval: 100 })] })
      const first = await c.pullOne(h)
      assert.ok(first.deadlineInMs > 0 && first.deadlineInMs <= 1500, `deadlineInMs, got ${first.deadlineInMs}`)
      const second = await c.pullOne(h, { waitMs: 20_000 })
      assert.equal(second.attempt, 2, 'a timeout spends a retry')
      expectError(await c.ack({ executionId: first.executionId, status: 'completed', output: 1 }), 409, 'the late ack', 'STALE_ATTEMPT')
      expectError(await c.A('POST', '/jobs/lease/renew', { executionId: first.executionId }), 409, 'a renew of the timed-out attempt', 'STALE_ATTEMPT')
      // No retries left: this timeout fails the stage and the pipeline.
      await c.until(p.pipelineId, (x) => x.status === 'Failed', 'the pipeline fails after the second timeout')
      expectError(await c.ack({ executionId: second.executionId, status: 'completed', output: 1 }), 409, 'the late ack of the last attempt', 'STALE_ATTEMPT')
    },
  ],

  // -------------------------------------------------------------- cancel
  [
    "cancel: 200 Cancelled, the running attempt's ack and renew are 409 JOB_CANCELLED, a second cancel is 409",
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'cancel', stages: [stage('a', h), stage('b', h, { dependsOn: ['a'] })] })
      const job = await c.pullOne(h)
      const r = await c.A('POST', `/pipelines/${p.pipelineId}/cancel`)
      expectStatus(r, 200, 'the cancel')
      assert.equal(r.body.status, 'Cancelled')
      expectError(await c.A('POST', '/jobs/lease/renew', { executionId: job.executionId }), 409, 'a renew after the cancel', 'JOB_CANCELLED')
      expectError(await c.ack({ executionId: job.executionId, status: 'completed', output: 1 }), 409, 'an ack after the cancel', 'JOB_CANCELLED')
      expectError(await c.A('POST', `/pipelines/${p.pipelineId}/cancel`), 409, 'a second cancel')
      const after = await c.get(p.pipelineId)
      assert.equal(after.status, 'Cancelled')
      for (const s of after.stages) assert.equal(s.status, 'Cancelled', `stage ${s.name} is Cancelled`)
      assert.ok(!Number.isNaN(Date.parse(after.finishedAt)), 'a cancelled pipeline has finishedAt')
      await c.nothingFor(h, 500)
      expectError(await c.A('POST', `/pipelines/${randomUUID()}/cancel`), 404, 'a cancel of an unknown pipeline')
    },
  ],
  [
    'cancel: a completed pipeline cannot be cancelled (409)',
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'finished', stages: [stage('a', h)] })
      await c.complete(await c.pullOne(h))
      await c.until(p.pipelineId, (x) => x.status === 'Completed', 'the pipeline completes')
      expectError(await c.A('POST', `/pipelines/${p.pipelineId}/cancel`), 409, 'a cancel of a completed pipeline')
      assert.equal((await c.get(p.pipelineId)).status, 'Completed')
    },
  ],

  // -------------------------------------------------------------- ordering
  [
    'dependsOn and runInParallelWith: order, parallel starts and upstream outputs',
    async (c) => {
      const h = (s) => c.h(s)
      const p = await c.create({
        name: 'diamond',
        stages: [
          stage('a', h('a')),
          stage('b', h('b'), { runInParallelWith: ['c'] }),
          stage('c', h('c')),
          stage('d', h('d'), { dependsOn: ['b', 'c'] }),
        ],
      })
      await c.nothingFor([h('b'), h('c'), h('d')], 500)
      await c.complete(await c.pullOne(h('a')), { from: 'a' })
      // b and c start together: both are handed out before either is acked.
      const b = await c.pullOne(h('b'))
      const cj = await c.pullOne(h('c'))
      assert.deepEqual(b.upstream.a, { output: { from: 'a' } }, 'b sees a’s output')
      await c.nothingFor(h('d'), 300)
      await c.complete(b, { from: 'b' })
      assert.equal(byName(await c.get(p.pipelineId), 'd').status, 'NotStarted', 'd waits for c too')
      await c.nothingFor(h('d'), 300)
      await c.complete(cj, { from: 'c' })
      const d = await c.pullOne(h('d'))
      assert.deepEqual(d.upstream.b, { output: { from: 'b' } })
      assert.deepEqual(d.upstream.c, { output: { from: 'c' } })
      await c.complete(d)
      await c.until(p.pipelineId, (x) => x.status === 'Completed', 'the pipeline completes')
    },
  ],
  [
    'dependsOn: independent stages start together, a stage waits for all of its dependencies',
    async (c) => {
      const h = c.h('x')
      const p = await c.create({
        name: 'fan',
        stages: [stage('a', h, { runInParallelWith: ['b'] }), stage('b', h), stage('join', c.h('join'), { dependsOn: ['a', 'b'] })],
      })
      const jobs = []
      const deadline = Date.now() + 20_000
      while (jobs.length < 2 && Date.now() < deadline) jobs.push(...(await c.pull(h, { max: 2, waitMs: 2000 })))
      assert.deepEqual(jobs.map((j) => j.stageName).sort(), ['a', 'b'], 'a and b are ready at once')
      await c.complete(jobs[0], 1)
      await c.nothingFor(c.h('join'), 500)
      await c.complete(jobs[1], 2)
      const join = await c.pullOne(c.h('join'))
      assert.deepEqual(Object.keys(join.upstream).sort(), ['a', 'b'])
      await c.complete(join)
      await c.until(p.pipelineId, (x) => x.status === 'Completed', 'the pipeline completes')
    },
  ],

  // -------------------------------------------------------------- context
  [
    "context: an ack's context entries are merged into the pipeline's and reach later stages",
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'ctx', context: { customer: 'acme', tier: 'gold' }, stages: [stage('a', h), stage('b', h, { dependsOn: ['a'] })] })
      const a = await c.pullOne(h)
      assert.deepEqual(a.context, { customer: 'acme', tier: 'gold' })
      await c.complete(a, 1, { context: { region: 'eu', nested: { k: [1, 2] } } })
      const b = await c.pullOne(h)
      assert.deepEqual(b.context, { customer: 'acme', tier: 'gold', region: 'eu', nested: { k: [1, 2] } }, 'b sees the merged context')
      await c.complete(b)
      const full = await c.get(p.pipelineId)
      assert.deepEqual(full.context, { customer: 'acme', tier: 'gold', region: 'eu', nested: { k: [1, 2] } })
    },
  ],

  // -------------------------------------------------------------- batch acks
  [
    'batch acks: one 200 with a result per ack, each what it alone would have got',
    async (c) => {
      const h = c.h('a')
      const p1 = await c.create({ name: 'b1', stages: [stage('a', h)] })
      const p2 = await c.create({ name: 'b2', stages: [stage('a', h, { maxRetries: 0 })] })
      const p3 = await c.create({ name: 'b3', stages: [stage('a', h)] })
      const jobs = []
      const deadline = Date.now() + 20_000
      while (jobs.length < 3 && Date.now() < deadline) jobs.push(...(await c.pull(h, { max: 3, waitMs: 2000 })))
      assert.equal(jobs.length, 3)
      const of = (p) => jobs.find((j) => j.pipelineId === p.pipelineId)
      const unknown = randomUUID()
      const r = await c.A('POST', '/jobs/ack', {
        acks: [
          { executionId: of(p1).executionId, status: 'completed', output: { n: 1 } },
          { executionId: of(p2).executionId, status: 'failed', error: { message: 'no', retryable: false } },
          { executionId: unknown, status: 'completed', output: 1 },
          { executionId: of(p3).executionId, status: 'completed', output: { s: 'nul\u0000' } },
        ],
      })
      expectStatus(r, 200, 'the batch')
      const results = r.body.results
      assert.equal(results.length, 4)
      assert.deepEqual(
        results.map((x) => [x.executionId, x.status, x.stageStatus ?? undefined]),
        [
          [of(p1).executionId, 200, 'Completed'],
          [of(p2).executionId, 200, 'Failed'],
          [unknown, 404, undefined],
          [of(p3).executionId, 400, undefined],
        ],
      )
      assert.ok(results[2].error && results[3].error, 'refused items carry an error')
      // The refused output left p3's attempt current; the acked ones are now stale.
      const again = await c.A('POST', '/jobs/ack', {
        acks: [
          { executionId: of(p3).executionId, status: 'completed', output: { s: 'ok' } },
          { executionId: of(p1).executionId, status: 'completed', output: 1 },
        ],
      })
      expectStatus(again, 200, 'the second batch')
      assert.deepEqual(
        again.body.results.map((x) => x.status),
        [200, 409],
      )
      assert.equal((await c.get(p1.pipelineId)).status, 'Completed')
      assert.equal((await c.get(p2.pipelineId)).status, 'Failed')
      assert.equal((await c.get(p3.pipelineId)).status, 'Completed')
    },
  ],
  [
    'batch acks: a body without the shape is one 400 and nothing in it is applied',
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'bad-batch', stages: [stage('a', h)] })
      const job = await c.pullOne(h)
      expectError(await c.A('POST', '/jobs/ack', { acks: [{ executionId: job.executionId, status: 'completed', output: 1 }, { status: 'completed' }] }), 400, 'an item without executionId')
      expectError(await c.A('POST', '/jobs/ack', { acks: 'nope' }), 400, 'acks that is not a list')
      const many = Array.from({ length: 501 }, () => ({ executionId: job.executionId, status: 'completed', output: 1 }))
      expectError(await c.A('POST', '/jobs/ack', { acks: many }), 400, '501 acks')
      assert.equal(byName(await c.get(p.pipelineId), 'a').status, 'Running', 'nothing was applied')
      await c.complete(job)
    },
  ],

  // -------------------------------------------------------------- logs
  [
    'logs: POST /logs is a 202 and the lines, with those of acks, are read back from GET /pipelines/{id}/logs',
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'logs', stages: [stage('a', h)] })
      const job = await c.pullOne(h)
      const at = new Date().toISOString()
      const r = await c.A('POST', '/logs', { executionId: job.executionId, entries: [{ level: 'info', message: 'by execution', at, fields: { step: 1 } }] })
      expectStatus(r, 202, 'POST /logs by executionId')
      expectStatus(await c.A('POST', '/logs', { pipelineId: p.pipelineId, entries: [{ level: 'warn', message: 'by pipeline', at }] }), 202, 'POST /logs by pipelineId')
      await c.complete(job, 1, { logs: [{ level: 'error', message: 'with the ack', at }] })
      let logs = []
      const deadline = Date.now() + 20_000
      while (Date.now() < deadline) {
        const g = await c.A('GET', `/pipelines/${p.pipelineId}/logs`)
        expectStatus(g, 200, 'GET logs')
        logs = g.body.logs
        if (['by execution', 'by pipeline', 'with the ack'].every((m) => logs.some((l) => l.message === m))) break
        await sleep(300)
      }
      const line = (m) => logs.find((l) => l.message === m)
      for (const m of ['by execution', 'by pipeline', 'with the ack']) assert.ok(line(m), `the line "${m}" is read back, got ${short(logs.map((l) => l.message))}`)
      const e = line('by execution')
      assert.equal(e.level, 'info')
      assert.equal(e.executionId, job.executionId)
      assert.equal(e.stageId, job.stageId)
      assert.deepEqual(e.fields, { step: 1 })
      assert.ok(!Number.isNaN(Date.parse(e.at)))
      assert.ok(e.id !== undefined && e.id !== null, 'a log line has an id')
      assert.equal(line('with the ack').level, 'error')
      expectError(await c.A('POST', '/logs', { executionId: randomUUID(), entries: [{ level: 'info', message: 'x', at }] }), 404, 'logs of an unknown attempt')
      expectError(await c.A('GET', `/pipelines/${randomUUID()}/logs`), 404, 'logs of an unknown pipeline')
    },
  ],

  // -------------------------------------------------------------- pipelines list
  [
    'GET /pipelines: newest first, without stages, filtered by status',
    async (c) => {
      const h = c.h('a')
      const older = await c.create({ name: 'older', stages: [stage('a', h)] })
      await sleep(50)
      const newer = await c.create({ name: 'newer', stages: [stage('a', h)] })
      const r = await c.A('GET', '/pipelines?status=Running&limit=100')
      expectStatus(r, 200, 'GET /pipelines')
      const ids = r.body.pipelines.map((x) => x.pipelineId)
      assert.ok(ids.includes(older.pipelineId) && ids.includes(newer.pipelineId), 'both running pipelines are listed')
      assert.ok(ids.indexOf(newer.pipelineId) < ids.indexOf(older.pipelineId), 'newest first')
      for (const x of r.body.pipelines) {
        assert.equal(x.status, 'Running', 'status filters')
        assert.equal(x.stages, undefined, 'listed without stages')
      }
      const one = await c.A('GET', '/pipelines?limit=1')
      assert.equal(one.body.pipelines.length, 1, 'limit')
      const done = await c.A('GET', '/pipelines?status=Completed&limit=100')
      assert.ok(!done.body.pipelines.some((x) => x.pipelineId === newer.pipelineId), 'a running pipeline is not listed as Completed')
      expectError(await c.A('GET', `/pipelines/${randomUUID()}`), 404, 'an unknown pipeline')
    },
  ],

  // -------------------------------------------------------------- workers
  [
    'workers: bootstrap, heartbeat and events with the session token, shutdown ends the token',
    async (c) => {
      const h = c.h('a')
      const r = await c.A('POST', '/workers/bootstrap', { name: 'conformance', handlers: [h], concurrency: 2, version: '1.0.0', host: 'conformance-host' })
      expectStatus(r, 201, 'bootstrap')
      const w = r.body
      assert.equal(typeof w.workerId, 'string')
      assert.ok(typeof w.sessionToken === 'string' && w.sessionToken.startsWith('ows_'), 'the session token starts with ows_')
      for (const k of ['heartbeatMs', 'leaseMs', 'maxWaitMs']) assert.ok(Number.isInteger(w[k]) && w[k] > 0, `${k} is a positive integer, got ${w[k]}`)
      const text = r.text.toLowerCase()
      for (const secret of ['amqp', 'postgres', 'redis://', 'password', 'databaseurl', 'database_url']) {
        assert.ok(!text.includes(secret), `no broker or database credentials in the bootstrap answer (found "${secret}")`)
      }
      const t = w.sessionToken
      const hb = await c.request(t, 'POST', '/workers/heartbeat', { inFlight: 0, cpu: 0.1, memoryBytes: 1024, lagMs: 1 })
      expectStatus(hb, 200, 'heartbeat with the session token and no workerId')
      assert.equal(hb.body.drain, false)
      expectStatus(await c.A('POST', '/workers/heartbeat', { workerId: w.workerId, inFlight: 0 }), 200, 'heartbeat with the API key and the workerId')
      expectStatus(
        await c.request(t, 'POST', '/workers/events', { events: [{ type: 'started', at: new Date().toISOString(), data: { pid: 1 } }] }),
        202,
        'events',
      )
      expectStatus(await c.request(t, 'POST', '/jobs/pull', { handlers: [h], waitMs: 0 }), 204, 'a pull with the session token')
      expectError(await c.B('POST', '/workers/heartbeat', { workerId: w.workerId, inFlight: 0 }), [403, 404], 'another application’s heartbeat for this worker')
      expectStatus(await c.request(t, 'POST', '/workers/shutdown', { reason: 'conformance' }), 200, 'shutdown')
      // Credentials may be cached briefly, so the refusal is awaited rather than expected at once.
      const deadline = Date.now() + 15_000
      let last
      for (;;) {
        last = await c.request(t, 'POST', '/workers/heartbeat', { inFlight: 0 })
        if (last.status === 401) break
        if (Date.now() > deadline) throw new Error(`the session token still works 15 s after shutdown: ${last.status} ${short(last.body)}`)
        await sleep(500)
      }
      expectError(await c.request(t, 'POST', '/jobs/pull', { handlers: [h], waitMs: 0 }), 401, 'a pull with the ended token')
    },
  ],
  [
    'workers: a worker that bootstrapped again may renew and ack what it pulled before',
    async (c) => {
      const h = c.h('a')
      const boot = async () => {
        const r = await c.A('POST', '/workers/bootstrap', { name: 'conformance', handlers: [h], concurrency: 1 })
        expectStatus(r, 201, 'bootstrap')
        return r.body
      }
      const w1 = await boot()
      await c.create({ name: 'handover', stages: [stage('a', h)] })
      const job = await c.pullOne(h, { key: w1.sessionToken })
      expectStatus(await c.request(w1.sessionToken, 'POST', '/workers/shutdown', {}), 200, 'shutdown')
      const w2 = await boot()
      assert.notEqual(w2.sessionToken, w1.sessionToken, 'a new session')
      expectStatus(await c.request(w2.sessionToken, 'POST', '/jobs/lease/renew', { executionId: job.executionId }), 200, 'renew from the new session')
      const r = await c.request(w2.sessionToken, 'POST', '/jobs/ack', { executionId: job.executionId, status: 'completed', output: 1 })
      expectStatus(r, 200, 'ack from the new session')
      assert.equal(r.body.stageStatus, 'Completed')
      expectStatus(await c.request(w2.sessionToken, 'POST', '/workers/shutdown', {}), 200, 'shutdown')
    },
  ],
  [
    'workers: bad bootstrap bodies are a 400',
    async (c) => {
      expectIssue(await c.A('POST', '/workers/bootstrap', { name: 'w', handlers: ['9 bad'], concurrency: 1 }), 'a bad handler name', /^handlers(\.0)?$/)
      expectIssue(await c.A('POST', '/workers/bootstrap', { handlers: [c.h('a')], concurrency: 1 }), 'no name', 'name')
      expectIssue(await c.A('POST', '/workers/bootstrap', { name: 'w', handlers: [c.h('a')] }), 'no concurrency', 'concurrency')
    },
  ],

  // -------------------------------------------------------------- approval
  [
    'approval: a stage requiring approval waits in AwaitingApproval; approved it runs, rejected it never does',
    async (c) => {
      const h = c.h('a')
      const gate = c.h('gate')
      const p = await c.create({ name: 'approve', stages: [stage('a', h), stage('gate', gate, { dependsOn: ['a'], requiresApproval: true })] })
      expectError(await c.A('POST', `/stages/${byName(await c.get(p.pipelineId), 'gate').id}/resume`, { decision: 'approved', reason: 'early' }), 409, 'resume of a stage not awaiting approval')
      await c.complete(await c.pullOne(h))
      const waiting = await c.until(p.pipelineId, (x) => byName(x, 'gate').status === 'AwaitingApproval', 'the gated stage awaits approval')
      assert.equal(waiting.status, 'Running')
      await c.nothingFor(gate, 1000)
      const r = await c.A('POST', `/stages/${byName(waiting, 'gate').id}/resume`, { decision: 'approved', reason: 'looks good' })
      expectStatus(r, 200, 'approve')
      const job = await c.pullOne(gate)
      assert.equal(job.stageName, 'gate')
      await c.complete(job)
      await c.until(p.pipelineId, (x) => x.status === 'Completed', 'the approved pipeline completes')

      const q = await c.create({ name: 'reject', stages: [stage('gate', gate, { requiresApproval: true }), stage('after', h, { dependsOn: ['gate'] })] })
      const qs = await c.until(q.pipelineId, (x) => byName(x, 'gate').status === 'AwaitingApproval', 'the gated stage awaits approval')
      expectError(await c.A('POST', `/stages/${byName(qs, 'gate').id}/resume`, { decision: 'maybe', reason: 'x' }), 400, 'an unknown decision')
      expectStatus(await c.A('POST', `/stages/${byName(qs, 'gate').id}/resume`, { decision: 'rejected', reason: 'no' }), 200, 'reject')
      const rejected = await c.until(q.pipelineId, (x) => FINAL_STAGE.includes(byName(x, 'gate').status), 'the rejected stage is final')
      assert.notEqual(byName(rejected, 'gate').status, 'Completed', 'a rejected stage does not complete')
      await c.nothingFor([gate, h], 1000)
    },
  ],

  // -------------------------------------------------------------- rerun / skip / append
  [
    'rerun: a completed stage runs again, with following the stages after it too',
    async (c) => {
      const h = c.h('a')
      const p = await c.create({ name: 'rerun', stages: [stage('a', h), stage('b', h, { dependsOn: ['a'] })] })
      await c.complete(await c.pullOne(h), 'a1')
      await c.complete(await c.pullOne(h), 'b1')
      const done = await c.until(p.pipelineId, (x) => x.status === 'Completed', 'the pipeline completes')
      const r = await c.A('POST', `/stages/${byName(done, 'a').id}/rerun`, {})
      expectStatus(r, 200, 'rerun')
      assert.equal(r.body.pipelineId, p.pipelineId, 'rerun answers the pipeline')
      const a2 = await c.pullOne(h)
      assert.equal(a2.stageName, 'a')
      await c.complete(a2, 'a2')
      await c.until(p.pipelineId, (x) => x.status === 'Completed', 'the pipeline completes after the rerun')
      const after = await c.get(p.pipelineId)
      assert.equal(byName(after, 'a').output, 'a2')
      assert.equal(byName(after, 'b').output, 'b1', 'without following, b is not run again')
      await c.nothingFor(h, 500)

      const f = await c.A('POST', `/stages/${byName(done, 'a').id}/rerun`, { following: true })
      expectStatus(f, 200, 'rerun following')
      const a3 = await c.pullOne(h)
      assert.equal(a3.stageName, 'a')
      await c.complete(a3, 'a3')
      const b2 = await c.pullOne(h)
      assert.equal(b2.stageName, 'b')
      assert.deepEqual(b2.upstream.a, { output: 'a3' }, 'b sees the rerun’s output')
      await c.complete(b2, 'b2')
      await c.until(p.pipelineId, (x) => x.status === 'Completed', 'the pipeline completes after rerunning with following')
    },
  ],
  [
    'skip: the stages depending on a skipped stage run as if it had completed',
    async (c) => {
      const h = c.h('a')
      const hb = c.h('b')
      const p = await c.create({ name: 'skip', stages: [stage('a', h), stage('b', hb, { dependsOn: ['a'] })] })
      const full = await c.get(p.pipelineId)
      const r = await c.A('POST', `/stages/${byName(full, 'a').id}/skip`)
      expectStatus(r, 200, 'skip')
      assert.equal(r.body.pipelineId, p.pipelineId, 'skip answers the pipeline')
      await c.until(p.pipelineId, (x) => byName(x, 'a').status === 'Skipped' && byName(x, 'b').status === 'Pending', 'a is Skipped and b Pending')
      await c.nothingFor(h, 500)
      await c.complete(await c.pullOne(hb))
      await c.until(p.pipelineId, (x) => x.status === 'Completed', 'the pipeline completes with a skipped stage')
    },
  ],
  [
    'append: stages without dependsOn are added to a running pipeline and run; a duplicate name is a 400',
    async (c) => {
      const h = c.h('a')
      const hz = c.h('z')
      const p = await c.create({ name: 'append-plain', stages: [stage('a', h)] })
      expectStatus(await c.A('POST', `/pipelines/${p.pipelineId}/stages`, { stages: [stage('z', hz)] }), 200, 'append')
      assert.ok(byName(await c.get(p.pipelineId), 'z'), 'the appended stage is listed')
      expectError(await c.A('POST', `/pipelines/${p.pipelineId}/stages`, { stages: [stage('a', h)] }), 400, 'appending a duplicate stage name')
      expectError(await c.A('POST', `/pipelines/${p.pipelineId}/stages`, { stages: [] }), 400, 'appending no stages')
      await c.complete(await c.pullOne(h))
      await c.complete(await c.pullOne(hz))
      const done = await c.until(p.pipelineId, (x) => x.status === 'Completed', 'the pipeline completes with its appended stage')
      assert.deepEqual(done.stages.map((x) => x.name).sort(), ['a', 'z'])
      expectError(await c.A('POST', `/pipelines/${p.pipelineId}/stages`, { stages: [stage('late', h)] }), 409, 'appending to a completed pipeline')
    },
  ],
  [
    'append: an appended stage may depend on a stage the pipeline already has',
    async (c) => {
      const h = c.h('a')
      const hz = c.h('z')
      const p = await c.create({ name: 'append', stages: [stage('a', h)] })
      const r = await c.A('POST', `/pipelines/${p.pipelineId}/stages`, { stages: [stage('z', hz, { dependsOn: ['a'] })] })
      expectStatus(r, 200, 'append')
      const full = await c.get(p.pipelineId)
      assert.equal(byName(full, 'z')?.status, 'NotStarted')
      expectError(await c.A('POST', `/pipelines/${p.pipelineId}/stages`, { stages: [stage('a', h)] }), 400, 'appending a duplicate stage name')
      expectError(await c.A('POST', `/pipelines/${p.pipelineId}/stages`, { stages: [stage('y', h, { dependsOn: ['nope'] })] }), 400, 'appending an unknown dependsOn')
      await c.nothingFor(hz, 300)
      await c.complete(await c.pullOne(h), 'from a')
      const z = await c.pullOne(hz)
      assert.deepEqual(z.upstream.a, { output: 'from a' })
      await c.complete(z)
      const done = await c.until(p.pipelineId, (x) => x.status === 'Completed', 'the pipeline completes with its appended stage')
      assert.equal(done.stages.length, 2)
    },
  ],
]

export const caseNames = CASES.map(([name]) => name)
