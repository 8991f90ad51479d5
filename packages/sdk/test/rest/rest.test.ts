import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { APIError, API_ERROR_STATUS, Auth, REST, TerminalError, TransportError, type Database } from '@onepipe/sdk'
import { testDatabase } from '@onepipe/testing'

let db: Database
let cleanup: () => Promise<void>

beforeAll(async () => {
  ;({ db, cleanup } = await testDatabase())
  await db.execute('CREATE TABLE notes (id serial PRIMARY KEY, text text NOT NULL, n int NOT NULL)')
})
afterAll(() => cleanup())

const count = async () => (await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM notes'))[0]?.n

const Note = z.object({ text: z.string().min(1), n: z.number().int(), tags: z.array(z.string()).optional() })

function api() {
  return REST.create('notes')
    .basePath('/api/notes')
    .db(db)
    .maxBodySize(1024)
    .post('/', { body: Note }, async (ctx) => {
      const b = await ctx.body()
      const [row] = await ctx.db.query<{ id: number }>('INSERT INTO notes (text, n) VALUES ($1, $2) RETURNING id', [b.text, b.n])
      return ctx.created({ id: row?.id, ...b }, `/api/notes/${row?.id}`)
    })
    .get('/:id', { params: z.object({ id: z.coerce.number().int() }) }, async (ctx) => {
      const [row] = await ctx.db.query('SELECT * FROM notes WHERE id = $1', [ctx.params.id])
      return row ?? ctx.notFound(`No note ${ctx.params.id}`)
    })
    .get('/', { query: z.object({ limit: z.coerce.number().int().max(50).default(10) }) }, (ctx) => ({ limit: ctx.query.limit }))
    .get('/echo/:a/:b', (ctx) => ({ params: ctx.params, query: ctx.query, ua: ctx.headers['x-test'], rid: ctx.requestId }))
    .put('/raw', async (ctx) => ({ got: await ctx.body() }))
    .delete('/x/:id', (ctx) => (ctx.params.id === '1' ? ctx.noContent() : ctx.notFound()))
    .post('/helpers/:which', (ctx) => {
      switch (ctx.params.which) {
        case 'json':
          return ctx.json({ ok: true }, 202, { 'x-extra': '1' })
        case 'bad':
          return ctx.badRequest('nope', { field: 'x' })
        case 'unauth':
          return ctx.unauthorized()
        case 'forbidden':
          return ctx.forbidden()
        case 'text':
          return 'plain'
        case 'nothing':
          return undefined
        default:
          return { which: ctx.params.which }
      }
    })
    .post('/throw/:code', (ctx) => {
      const code = ctx.params.code as keyof typeof API_ERROR_STATUS
      if (code in API_ERROR_STATUS) throw new APIError(code, `thrown ${code}`)
      if (ctx.params.code === 'terminal') throw new TerminalError('CARD_DECLINED', 'declined')
      if (ctx.params.code === 'transport') throw new TransportError('DB_UNAVAILABLE', 'secret host db.internal:5432 down')
      throw new Error('secret internal detail')
    })
    .post('/upload', async (ctx) => {
      const f = await ctx.file('doc')
      const all = await ctx.files()
      return { name: f?.name, size: f?.size, text: await f?.text(), count: all.length, title: await ctx.formField('title'), fields: await ctx.formFields() }
    })
    .post('/big', { maxBodySize: 10 }, async (ctx) => ({ got: await ctx.body() }))
    .build()
}

const json = (body: unknown, headers: Record<string, string> = {}) => ({ method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })

describe('REST handlers and ctx helpers', () => {
  let a: ReturnType<typeof api>
  beforeAll(() => {
    a = api()
  })

  it('created() returns 201 with Location and the stored row', async () => {
    const res = await a.request('/api/notes', json({ text: 'hi', n: 1 }))
    expect(res.status).toBe(201)
    const body = (await res.json()) as { id: number }
    expect(res.headers.get('location')).toBe(`/api/notes/${body.id}`)
    expect(res.headers.get('x-request-id')).toBeTruthy()
    const got = await a.request(`/api/notes/${body.id}`)
    expect(got.status).toBe(200)
    expect(await got.json()).toMatchObject({ text: 'hi', n: 1 })
  })

  it('a returned plain object is 200 JSON; params, query and headers are exposed', async () => {
    const res = await a.request('/api/notes/echo/x/y?q=1', { headers: { 'x-test': 'yes', 'x-request-id': 'rid-1' } })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/application\/json/)
    expect(await res.json()).toEqual({ params: { a: 'x', b: 'y' }, query: { q: '1' }, ua: 'yes', rid: 'rid-1' })
  })

  it('validates and coerces the query string', async () => {
    expect(await (await a.request('/api/notes')).json()).toEqual({ limit: 10 })
    const bad = await a.request('/api/notes?limit=500')
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { error: { details: { issues: { path: string }[] } } }).error.details.issues[0]?.path).toBe('limit')
  })

  it.each([
    ['json', 202, { ok: true }],
    ['bad', 400, { error: { code: 'BAD_REQUEST', message: 'nope', details: { field: 'x' } } }],
    ['unauth', 401, { error: { code: 'UNAUTHORIZED' } }],
    ['forbidden', 403, { error: { code: 'FORBIDDEN' } }],
  ])('ctx helper %s answers %i', async (which, status, body) => {
    const res = await a.request(`/api/notes/helpers/${which}`, { method: 'POST' })
    expect(res.status).toBe(status)
    expect(await res.json()).toMatchObject(body)
  })

  it('json() keeps extra headers; text and undefined map to text/plain and 204', async () => {
    expect((await a.request('/api/notes/helpers/json', { method: 'POST' })).headers.get('x-extra')).toBe('1')
    const t = await a.request('/api/notes/helpers/text', { method: 'POST' })
    expect(await t.text()).toBe('plain')
    expect((await a.request('/api/notes/helpers/nothing', { method: 'POST' })).status).toBe(204)
  })

  it('noContent() and notFound()', async () => {
    expect((await a.request('/api/notes/x/1', { method: 'DELETE' })).status).toBe(204)
    const nf = await a.request('/api/notes/x/2', { method: 'DELETE' })
    expect(nf.status).toBe(404)
    expect(await nf.json()).toMatchObject({ error: { code: 'NOT_FOUND' } })
  })

  it.each(Object.entries(API_ERROR_STATUS))('APIError %s maps to %i with a JSON body', async (code, status) => {
    const res = await a.request(`/api/notes/throw/${code}`, { method: 'POST' })
    expect(res.status).toBe(status)
    const body = (await res.json()) as { error: { code: string; message: string; requestId: string } }
    expect(body.error.code).toBe(code)
    // The handler chose this answer, 5xx included ("the shop is closed"): its message is for the client.
    expect(body.error.message).toBe(`thrown ${code}`)
    expect(body.error.requestId).toBeTruthy()
  })

  it('a TerminalError keeps its code; a TransportError becomes 503 without internals', async () => {
    const t = await a.request('/api/notes/throw/terminal', { method: 'POST' })
    expect(t.status).toBe(422)
    expect(await t.json()).toMatchObject({ error: { code: 'CARD_DECLINED' } })
    const tr = await a.request('/api/notes/throw/transport', { method: 'POST' })
    expect(tr.status).toBe(503)
    expect(await tr.text()).not.toContain('db.internal')
  })

  it('an uncaught error is a 500 JSON with a request id and no stack or message', async () => {
    const res = await a.request('/api/notes/throw/boom', { method: 'POST', headers: { 'x-request-id': 'trace-me' } })
    expect(res.status).toBe(500)
    const text = await res.text()
    expect(text).not.toContain('secret')
    expect(text).not.toMatch(/at .*\.ts:\d+/)
    expect(JSON.parse(text)).toEqual({ error: { code: 'INTERNAL', message: 'Internal server error', requestId: 'trace-me' } })
  })

  it('reads multipart files and form fields', async () => {
    const fd = new FormData()
    fd.append('title', 'plan')
    fd.append('tag', 'a')
    fd.append('tag', 'b')
    fd.append('doc', new File(['hello blueprint'], 'plan.txt', { type: 'text/plain' }))
    fd.append('doc', new File(['second'], 'b.txt'))
    const res = await a.request('/api/notes/upload', { method: 'POST', body: fd })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ name: 'plan.txt', size: 15, text: 'hello blueprint', count: 2, title: 'plan', fields: { title: 'plan', tag: ['a', 'b'] } })
  })
})

describe('bad input changes nothing', () => {
  let a: ReturnType<typeof api>
  beforeAll(() => {
    a = api()
  })

  it.each([
    ['malformed JSON', json('{"text": "x", '), 400, 'INVALID_JSON'],
    ['an empty body', json(''), 400, 'BAD_REQUEST'],
    ['a wrong type', json({ text: 'x', n: 'one' }), 400, 'VALIDATION_FAILED'],
    ['a missing field', json({ n: 1 }), 400, 'VALIDATION_FAILED'],
    ['a wrong content type', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'text=x' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['a body over the limit', json({ text: 'x'.repeat(2000), n: 1 }), 413, 'PAYLOAD_TOO_LARGE'],
  ])('%s → %i %s', async (_name, init, status, code) => {
    const before = await count()
    const res = await a.request('/api/notes', init)
    expect(res.status).toBe(status)
    expect(res.headers.get('content-type')).toMatch(/application\/json/)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code)
    expect(await count()).toBe(before)
  })

  it('names the failing field path', async () => {
    const res = await a.request('/api/notes', json({ text: 'x', n: 1, tags: ['ok', 5] }))
    const body = (await res.json()) as { error: { details: { issues: { path: string }[] } } }
    expect(body.error.details.issues.map((i) => i.path)).toEqual(['tags.1'])
  })

  it('a chunked body over the limit is refused too', async () => {
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('"' + 'y'.repeat(50)))
        c.enqueue(new TextEncoder().encode('"'))
        c.close()
      },
    })
    const res = await a.request('/api/notes/big', { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half' })
    expect(res.status).toBe(413)
  })

  it('an unknown route on the API alone is a 404', async () => {
    expect((await a.request('/api/nothing')).status).toBe(404)
  })
})

describe('auth and CORS', () => {
  const secured = REST.create('secure')
    .auth(Auth.bearer((t) => (t === 'good' ? { id: 'u1', roles: ['admin'] } : t === 'plain' ? { id: 'u2' } : null)))
    .cors({ origin: 'https://app.example.com' })
    .get('/me', (ctx) => ({ user: ctx.user?.id }))
    .get('/open', { auth: false }, (ctx) => ({ user: ctx.user?.id ?? null }))
    .get('/admin', { auth: { roles: ['admin'] } }, () => ({ ok: true }))
    .build()

  it('401 without credentials, the user with them', async () => {
    const res = await secured.request('/me')
    expect(res.status).toBe(401)
    expect(await res.json()).toMatchObject({ error: { code: 'UNAUTHORIZED' } })
    expect(await (await secured.request('/me', { headers: { authorization: 'Bearer good' } })).json()).toEqual({ user: 'u1' })
  })
  it('public routes work without a user', async () => {
    expect(await (await secured.request('/open')).json()).toEqual({ user: null })
  })
  it('roles are enforced with 403', async () => {
    expect((await secured.request('/admin', { headers: { authorization: 'Bearer plain' } })).status).toBe(403)
    expect((await secured.request('/admin', { headers: { authorization: 'Bearer good' } })).status).toBe(200)
  })
  it('answers a CORS preflight for an allowed origin', async () => {
    const res = await secured.request('/me', { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' } })
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    const other = await secured.request('/me', { method: 'OPTIONS', headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'GET' } })
    expect(other.headers.get('access-control-allow-origin')).toBeNull()
  })
})

describe('REST configuration errors', () => {
  it('refuses a REST with no routes', () => {
    expect(() => REST.create('empty').build()).toThrow(/no routes/)
  })
  it('refuses a missing database instead of silently using another', () => {
    expect(() => REST.create('x').db(undefined as unknown as Database)).toThrow(/needs a Database/)
  })
  it('refuses a bad size', () => {
    expect(() => REST.create('x').maxBodySize('lots')).toThrow(/Cannot read size/)
  })
  it('produces an OpenAPI document from the schemas', () => {
    const doc = api().openapiDocument() as { paths: Record<string, Record<string, { requestBody?: unknown; parameters: { name: string }[] }>> }
    expect(doc.paths['/api/notes']?.post?.requestBody).toMatchObject({ content: { 'application/json': { schema: { type: 'object', required: ['text', 'n'] } } } })
    expect(doc.paths['/api/notes/{id}']?.get?.parameters.map((p) => p.name)).toEqual(['id'])
    expect(doc.paths['/api/notes']?.get?.parameters.map((p) => p.name)).toEqual(['limit'])
  })
})
