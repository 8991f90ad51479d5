// POST /__onepipe/sql: JSON in, JSON out, and every bad body a typed JSON
// error carrying the request id.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Hono } from 'hono'
import { mountSqlConsoleRoutes, silentLogger, type Database } from '@onepipe/sdk'
import { testDatabase } from '@onepipe/testing'

let db: Database
let cleanup: () => Promise<void>
const app = new Hono()
beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
  await db.execute('CREATE TABLE t (id int PRIMARY KEY)')
  await db.execute('INSERT INTO t SELECT generate_series(1, 5)')
  mountSqlConsoleRoutes(app, { db, logger: silentLogger })
})
afterAll(async () => {
  await cleanup()
})

const post = (body: string | Uint8Array, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  app.request('/__onepipe/sql', { method: 'POST', body, headers: { 'x-request-id': 'req-sql-1', ...headers } })

async function errorOf(res: Response, status: number, code: string): Promise<{ message: string; details?: { issues?: { path: string; message: string }[] } }> {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toMatch(/^application\/json/)
  expect(res.headers.get('x-request-id')).toBe('req-sql-1')
  const body = (await res.json()) as { error: { code: string; message: string; requestId: string; details?: { issues?: { path: string; message: string }[] } } }
  expect(body.error).toMatchObject({ code, requestId: 'req-sql-1' })
  return body.error
}

it('answers a SELECT as { columns, rows, truncated, ms }', async () => {
  const res = await post(JSON.stringify({ sql: 'SELECT id FROM t ORDER BY id', maxRows: 2 }))
  expect(res.status).toBe(200)
  const body = (await res.json()) as Record<string, unknown>
  expect(body).toMatchObject({ columns: [{ name: 'id', type: 'integer' }], rows: [[1], [2]], truncated: true })
  expect(typeof body.ms).toBe('number')
})

it('refuses a second statement with 400 naming it, and deletes nothing', async () => {
  const e = await errorOf(await post(JSON.stringify({ sql: 'SELECT 1; DELETE FROM t' })), 400, 'VALIDATION_FAILED')
  expect(e.details?.issues?.[0]).toMatchObject({ path: 'sql', message: expect.stringMatching(/only one statement/) as unknown })
  expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM t'))[0]!.n).toBe(5)
})

it('refuses a body that is not JSON, not an object, or lacks sql', async () => {
  await errorOf(await post('SELECT 1'), 400, 'INVALID_JSON')
  await errorOf(await post(''), 400, 'BAD_REQUEST')
  await errorOf(await post('SELECT 1', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE')
  expect((await errorOf(await post('[1]'), 400, 'VALIDATION_FAILED')).details?.issues?.[0]?.path).toBe('')
  expect((await errorOf(await post('{}'), 400, 'VALIDATION_FAILED')).details?.issues?.[0]).toMatchObject({ path: 'sql', message: expect.stringMatching(/is required/) as unknown })
  expect((await errorOf(await post('{"sql": 1}'), 400, 'VALIDATION_FAILED')).details?.issues?.[0]?.path).toBe('sql')
  expect((await errorOf(await post('{"sql": "SELECT 1", "maxRows": 0}'), 400, 'VALIDATION_FAILED')).details?.issues?.[0]?.path).toBe('maxRows')
  expect((await errorOf(await post('{"sql": "SELECT 1", "maxRows": "5"}'), 400, 'VALIDATION_FAILED')).details?.issues?.[0]?.path).toBe('maxRows')
})

it('refuses a body over 64 KiB with 413, declared or streamed', async () => {
  const big = JSON.stringify({ sql: `SELECT '${'x'.repeat(100 * 1024)}'` })
  const e = await errorOf(await post(big), 413, 'PAYLOAD_TOO_LARGE')
  expect(e.message).toMatch(/65536/)
  const chunked = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode(big))
      c.close()
    },
  })
  const res = await app.request('/__onepipe/sql', { method: 'POST', body: chunked, headers: { 'content-type': 'application/json', 'x-request-id': 'req-sql-1' }, duplex: 'half' })
  await errorOf(res, 413, 'PAYLOAD_TOO_LARGE')
})

it('answers an error of the query as 400 QUERY_FAILED with PostgreSQL\'s message', async () => {
  const e = await errorOf(await post(JSON.stringify({ sql: 'SELECT nope FROM t' })), 400, 'QUERY_FAILED')
  expect(e.message).toMatch(/column "nope" does not exist/)
})

it('refuses fields it does not know in the body', async () => {
  const e = await errorOf(await post(JSON.stringify({ sql: 'SELECT 1', timeoutMs: 1 })), 400, 'VALIDATION_FAILED')
  expect(e.details?.issues?.[0]?.path).toBe('timeoutMs')
})
