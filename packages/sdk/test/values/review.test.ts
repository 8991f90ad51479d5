import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Channel, Cron, REST, stderrLogger, TerminalError, ValidationError, Workflow, WorkflowEngine, silentLogger, type Database } from '@onepipe/sdk'
import { testDatabase } from '@onepipe/testing'

// Faults found by trying the value rule from outside, each kept as a test.
let db: Database
let cleanup: () => Promise<void>
const closers: (() => Promise<void>)[] = []
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterAll(async () => {
  for (const c of closers) await c()
  await cleanup()
})

describe('faults found from outside', () => {
  it('the default logger never throws, whatever it is given (a BigInt, a cycle, a throwing getter)', () => {
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    const getter = Object.defineProperty({}, 'boom', { enumerable: true, get: () => { throw new Error('getter') } })
    const write = process.stderr.write.bind(process.stderr)
    const lines: string[] = []
    process.stderr.write = ((s: string) => (lines.push(s), true))
    try {
      expect(() => stderrLogger.error({ err: { code: 'X', amount: 10n } }, 'bigint')).not.toThrow()
      expect(() => stderrLogger.error({ err: cyclic }, 'cycle')).not.toThrow()
      expect(() => stderrLogger.warn({ err: Object.assign(new Error('e'), { cause: cyclic, n: 5n }) }, 'error')).not.toThrow()
      expect(() => stderrLogger.error({ err: getter }, 'getter')).not.toThrow()
    } finally {
      process.stderr.write = write
    }
    expect(lines).toHaveLength(4)
    for (const l of lines) expect(() => JSON.parse(l) as unknown).not.toThrow()
  })

  it('a cron tick that throws a BigInt or a cycle outside serve() fails the tick once, recorded', async () => {
    const job = Cron.create('throws-bigint').schedule('0 0 1 1 *').db(db).handler(() => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- apps throw plain objects; recording must survive a BigInt
      throw { code: 'X', amount: 10n }
    }).build()
    closers.push(() => job.stop())
    const run = await job.trigger()
    expect(run.status).toBe('failed')
    expect(run.error).toMatchObject({ code: 'X', details: { amount: '10n' } })
  })

  it('ids, names and keys with a lone surrogate or NUL are refused, so two ids never share a record', async () => {
    const wf = Workflow.create('ids').db(db).define(async () => 'ok').build()
    const engine = new WorkflowEngine({ db, workflows: [wf], logger: silentLogger })
    await engine.start()
    closers.push(() => engine.stop())
    for (const id of ['x\ud800', 'x\udc00', 'a\u0000b']) {
      await expect(wf.start(undefined, { workflowId: id })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', issues: [{ path: 'workflowId' }] })
      await expect(wf.get(id)).rejects.toBeInstanceOf(ValidationError)
    }
    const h = await wf.start(undefined, { workflowId: 'fine' })
    await expect(wf.signal(h.workflowId, 'go\u0000', 1)).rejects.toMatchObject({ issues: [{ path: 'signal' }] })
    let runs = 0
    const ch = Channel.create('keys').db(db).idempotency((i) => (i as { k: string }).k).handler(() => ++runs).build()
    closers.push(() => ch.close())
    await expect(ch.call({ k: 'k\ud800' })).rejects.toBeInstanceOf(ValidationError)
    await expect(ch.call({ k: 'ok' }, { idempotencyKey: 'k\u0000' })).rejects.toBeInstanceOf(ValidationError)
    expect(runs).toBe(0)
  })

  it('the first caller of an idempotent channel gets the failure exactly as every replay does', async () => {
    const ch = Channel.create('same-error').db(db).idempotency(() => 'k').handler(() => {
      throw new TerminalError('T_NUL', 'term \u0000 nul \ud800 lone')
    }).build()
    closers.push(() => ch.close())
    const first = await ch.call({}).catch((e: unknown) => e)
    const replay = await ch.call({}).catch((e: unknown) => e)
    expect(first).toBeInstanceOf(TerminalError)
    expect(replay).toBeInstanceOf(TerminalError)
    for (const k of ['name', 'code', 'message', 'status', 'retryable', 'details'] as const) expect((replay as TerminalError)[k]).toEqual((first as TerminalError)[k])
    expect((first as TerminalError).message).toBe('term \\u0000 nul \\ud800 lone')
  })

  it('an array with a named property is refused rather than losing it', async () => {
    const arr = Object.assign([1, 2], { extra: true })
    const ch = Channel.create('named').db(db).handler(() => arr).build()
    closers.push(() => ch.close())
    await expect(ch.call({})).rejects.toMatchObject({ code: 'INVALID_RESULT', issues: [{ path: 'extra' }] })
  })

  it('a workflow output read in the same process is the stored value, not the object the body returned', async () => {
    const out = { a: 1, u: undefined }
    const wf = Workflow.create('same-out').db(db).define(async () => out).build()
    const engine = new WorkflowEngine({ db, workflows: [wf], logger: silentLogger })
    await engine.start()
    closers.push(() => engine.stop())
    const r = await (await wf.start(undefined)).result('20s')
    expect(r).not.toBe(out)
    expect(r).toStrictEqual({ a: 1 })
  })

  it('a compressed request body is a 415 that says so, not "not valid UTF-8"', async () => {
    const api = REST.create('enc').post('/x', (ctx) => ctx.body()).build()
    const res = await api.request('/x', { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: '{}' })
    expect(res.status).toBe(415)
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/Content-Encoding "gzip" is not supported/)
  })
})
