// `$.on` handlers over a real event flow: every matching event handled once
// per handler (wildcards included), `$.do` recorded and not repeated on replay,
// `$.try` bounded, `$.send` appending, and a handler that throws leaves a
// failed run without stopping the others.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Flow, Semantic, silentLogger, Things, type Database, type RuntimeContext, type SemanticEvent } from '@onepipe/sdk'
import { testDatabase, waitFor } from '@onepipe/testing'

let db: Database
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
  await db.execute('CREATE TABLE effects (handler text NOT NULL, order_id text NOT NULL)')
})
afterAll(async () => {
  await cleanup()
})

const rt = (): RuntimeContext => ({ instanceId: 'on-test', db, cache: undefined as never, logger: silentLogger, signal: new AbortController().signal })
const ev = (type: string, id: string, data: Record<string, unknown> = {}) => {
  const [noun, verb] = type.split('.') as [string, string]
  return { type, noun, verb, id, data: { $id: id, ...data } }
}

it('handles every matching event once per handler, with wildcards, durable actions and sends', async () => {
  const events = Flow.create('on-events').db(db).build() as Flow<ReturnType<typeof ev>>
  const source = { events, send: (type: string, data: Record<string, unknown>, o?: { id?: string }) => events.append(ev(type, o?.id ?? 'x', data)) }
  const $ = Semantic.create('on-test').source(source).build()
  const seen: string[] = []
  let tries = 0
  $.on('Order.created', async (e: SemanticEvent, $) => {
    seen.push(`created:${e.id}`)
    await $.do(async ({ tx }) => tx!.execute('INSERT INTO effects VALUES ($1, $2)', ['created', e.id]), { stepId: 'effect', transaction: true })
    const fast = await $.try(async () => 'ok', { timeout: '1s' })
    const slow = await $.try(({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))), { timeout: 50 }).catch((err: { code?: string }) => err.code)
    tries++
    if (e.data.total === 99) await $.send('Order.flagged', { reason: 'total' }, { id: e.id! })
    return { fast, slow }
  })
  $.on('*.created', async (e, $) => {
    await $.do(async ({ tx }) => tx!.execute('INSERT INTO effects VALUES ($1, $2)', ['any-created', e.id]), { transaction: true })
  })
  $.on('Order.*', async (e, $) => {
    await $.do(async ({ tx }) => tx!.execute('INSERT INTO effects VALUES ($1, $2)', [`order-${e.verb}`, e.id]), { transaction: true })
  })
  $.on('Order.flagged', async (e, $) => {
    await $.do(async ({ tx }) => tx!.execute('INSERT INTO effects VALUES ($1, $2)', ['flagged', e.id]), { transaction: true })
  })
  $.on('Order.paid', async () => {
    throw new Error('the ledger is down')
  })
  await $.attach(rt())
  try {
    for (let i = 0; i < 20; i++) await events.append(ev('Order.created', `o${i}`, { total: i === 7 ? 99 : i }))
    await events.append(ev('Customer.created', 'c1'))
    await events.append(ev('Order.paid', 'o1'))
    await events.append(ev('Order.shipped', 'o1'))
    const count = async (h: string) => Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM effects WHERE handler = $1', [h]))[0]!.n)
    // The effect is the run's first step; the rest of the run (two tries) may still be going: wait for every run to end.
    // Each handler moves on its own: wait for all of them (and for every run to end, the effect being its first step).
    const expected: Record<string, number> = { created: 20, 'any-created': 21, 'order-created': 20, 'order-paid': 1, 'order-shipped': 1, 'order-flagged': 1, flagged: 1 }
    const failedRuns = () => db.query<{ status: string }>("SELECT status FROM _onepipe_workflows WHERE workflow_name = 'on.on-test.Order.paid.0' AND status = 'failed'")
    await waitFor(async () => {
      for (const [h, n] of Object.entries(expected)) if ((await count(h)) !== n) return false
      return tries === 20 && (await failedRuns()).length === 1
    }, { timeoutMs: 60_000, what: 'every handler to see its events' })
    // Each (handler, order) once.
    const dups = await db.query('SELECT handler, order_id, count(*) FROM effects GROUP BY 1, 2 HAVING count(*) > 1')
    expect(dups).toEqual([])
    expect(await count('order-created')).toBe(20)
    expect(await count('order-paid')).toBe(1)
    expect(await count('order-flagged')).toBe(1)
    expect(tries).toBe(20)
    // The failing handler left a failed run, visible and retryable, without holding up the rest.
    const failed = await db.query<{ status: string }>("SELECT status FROM _onepipe_workflows WHERE workflow_name = 'on.on-test.Order.paid.0'")
    expect(failed.map((r) => r.status)).toEqual(['failed'])
  } finally {
    await $.detach()
  }
  expect(seen.filter((s) => s === 'created:o7').length).toBe(1)
})

it('follows a Things store: a change and its event commit together, and handlers see created and updated', async () => {
  const things = Things.create('on-things').db(db).noun('Customer').build()
  const $ = Semantic.create('on-things').source(things).build()
  $.on('Customer.*', async (e, $) => {
    await $.do(async ({ tx }) => tx!.execute('INSERT INTO effects VALUES ($1, $2)', [`customer-${e.verb}`, e.id]), { transaction: true })
  })
  await things.attach(rt())
  await $.attach(rt())
  try {
    const customers = things.noun('Customer')
    const ada = await customers.create({ name: 'Ada' })
    await customers.update(ada.$id, { name: 'Ada L.' })
    await things.send('Customer.greeted', { by: 'shop' }, { id: ada.$id })
    await waitFor(async () => (await db.query('SELECT 1 FROM effects WHERE handler = $1 AND order_id = $2', ['customer-greeted', ada.$id])).length === 1, { timeoutMs: 60_000, what: 'the three customer events' })
    const seen = await db.query<{ handler: string }>('SELECT handler FROM effects WHERE order_id = $1 ORDER BY handler', [ada.$id])
    expect(seen.map((r) => r.handler)).toEqual(['customer-created', 'customer-greeted', 'customer-updated'])
  } finally {
    await $.detach()
    await things.detach()
  }
})
