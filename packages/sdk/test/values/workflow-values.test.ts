import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger, TerminalError, ValidationError, Workflow, WorkflowEngine, type Database, type WorkflowEngineOptions } from '@onepipe/sdk'
import { testDatabase, waitFor } from '@onepipe/testing'

// The value rule in workflows: a step result, input, output or signal that
// cannot round-trip is refused; a permanent error (a refused value, a
// database refusal) fails the run once with the error recorded; it never
// loops through lease expiries.
let db: Database
let cleanup: () => Promise<void>
const engines: WorkflowEngine[] = []
let n = 0
const uid = (p: string) => `${p}-${++n}-${Math.random().toString(36).slice(2, 8)}`

beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
})
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()))
})
afterAll(async () => {
  await cleanup()
})

// A short stale limit: a run left 'running' would be taken over and retried within the test.
const FAST = { heartbeat: 100, staleAfter: '1s', poll: 50, logger: silentLogger } as const
async function engine(workflows: NonNullable<WorkflowEngineOptions['workflows']>): Promise<WorkflowEngine> {
  const e = new WorkflowEngine({ db, ...FAST, workflows })
  engines.push(e)
  await e.start()
  return e
}
const settled = async (wf: Workflow<unknown, unknown>, id: string) => waitFor(async () => {
  const r = await wf.get(id)
  return r && (r.status === 'failed' || r.status === 'completed') ? r : undefined
}, { what: `run ${id} to end` })

describe('workflow values', () => {
  it("a step returning 'a\\u0000b' fails the run once with INVALID_RESULT; the step is not run again after lease expiries", async () => {
    let runs = 0
    const wf = Workflow.create(uid('nul')).db(db).define(async (ctx) => ctx.step('s', () => (runs++, 'a\u0000b'))).build()
    await engine([wf])
    const h = await wf.start(undefined)
    const r = await settled(wf, h.workflowId)
    expect(r.status).toBe('failed')
    expect(r.error).toMatchObject({ code: 'INVALID_RESULT' })
    // Two stale periods later the step still ran once.
    await new Promise((res) => setTimeout(res, 2500))
    expect(runs).toBe(1)
    expect((await wf.get(h.workflowId))?.status).toBe('failed')
  })

  it('a TerminalError whose message holds NUL is recorded (escaped) and fails the run once', async () => {
    const wf = Workflow.create(uid('term')).db(db).define(async (ctx) => ctx.step('s', () => {
      throw new TerminalError('CARD_DECLINED', 'declined\u0000\ud800')
    })).build()
    await engine([wf])
    const h = await wf.start(undefined)
    const r = await settled(wf, h.workflowId)
    expect(r.error).toMatchObject({ code: 'CARD_DECLINED', message: 'declined\\u0000\\ud800' })
  })

  it('a thrown plain object keeps its fields; an object without a prototype is recorded', async () => {
    const plain = Workflow.create(uid('obj')).db(db).define(async () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- apps do throw plain objects; OnePipe must keep their fields
      throw { code: 'CARD_DECLINED', reason: 'expired', amount: 12 }
    }).build()
    const bare = Workflow.create(uid('bare')).db(db).define(async () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- an object without a prototype must not crash the recording
      throw Object.assign(Object.create(null) as object, { code: 'NO_PROTO', message: 'bare' })
    }).build()
    await engine([plain, bare])
    const a = await plain.start(undefined)
    const b = await bare.start(undefined)
    expect((await settled(plain as Workflow<unknown, unknown>, a.workflowId)).error).toMatchObject({ code: 'CARD_DECLINED', message: 'expired', details: { reason: 'expired', amount: 12 } })
    expect((await settled(bare as Workflow<unknown, unknown>, b.workflowId)).error).toMatchObject({ code: 'NO_PROTO', message: 'bare' })
  })

  it('a step result reads the same on its first run as on replay (a Date is refused, undefined properties are left out)', async () => {
    const wf = Workflow.create(uid('same')).db(db).define(async (ctx) => {
      const a = await ctx.step('a', () => ({ x: 1, u: undefined }))
      const keys = Object.keys(a)
      const d = await ctx.step('d', () => new Date()).catch((e: unknown) => (e as ValidationError).code)
      return { keys, d }
    }).build()
    await engine([wf])
    const h = await wf.start(undefined)
    expect(await h.result('20s')).toEqual({ keys: ['x'], d: 'INVALID_RESULT' })
  })

  it('input and signal data that cannot round-trip are refused with a 400 and nothing stored; an output that cannot fails the run', async () => {
    const wf = Workflow.create(uid('in')).db(db).define(async (ctx) => {
      await ctx.waitForSignal('go', { timeout: '30s' })
      return { n: NaN }
    }).build()
    await engine([wf])
    const bad = await wf.start({ n: NaN }, { workflowId: 'never' }).catch((e: unknown) => e)
    expect(bad).toBeInstanceOf(ValidationError)
    expect((bad as ValidationError).status).toBe(400)
    expect(await wf.get('never')).toBeUndefined()
    const h = await wf.start({ ok: true })
    await expect(wf.signal(h.workflowId, 'go', { at: new Date() })).rejects.toBeInstanceOf(ValidationError)
    await wf.signal(h.workflowId, 'go', { ok: 1 })
    const r = await settled(wf, h.workflowId)
    expect(r).toMatchObject({ status: 'failed', error: { code: 'INVALID_RESULT' } })
  })

  it('a write the database refuses for good (a constraint) fails the run once instead of retrying it on every takeover', async () => {
    const name = uid('refused')
    await db.execute(`ALTER TABLE _onepipe_workflow_steps ADD CONSTRAINT ${name.replace(/-/g, '_')} CHECK (step_name <> 'refused')`)
    let runs = 0
    // Refused in the commit that ends the run, and in the one that parks it for a sleep.
    const last = Workflow.create(name).db(db).define(async (ctx) => {
      await ctx.step('refused', () => void runs++)
      return 'never'
    }).build()
    const parked = Workflow.create(`${name}-p`).db(db).define(async (ctx) => {
      await ctx.step('refused', () => void runs++)
      await ctx.sleep('10ms')
      return 'never'
    }).build()
    await engine([last, parked])
    const ids = [(await last.start(undefined)).workflowId, (await parked.start(undefined)).workflowId]
    for (const [i, wf] of [last, parked].entries()) {
      const r = await settled(wf, ids[i] as string)
      expect(r).toMatchObject({ status: 'failed', error: { code: 'DB_CONSTRAINT' } })
    }
    await new Promise((res) => setTimeout(res, 2500))
    expect(runs).toBe(2)
    await db.execute(`ALTER TABLE _onepipe_workflow_steps DROP CONSTRAINT ${name.replace(/-/g, '_')}`)
  })
})
