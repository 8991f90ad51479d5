import type { CacheLike, Database, Logger } from '@onepipe/core'
import type { Context } from 'hono'
import type { AuthUser } from './auth.js'
import { APIError } from './errors.js'

/** A value a form field may hold: text or an uploaded file. */
export type FormValue = string | File

/**
 * What a REST handler receives. `params`, `query` and `body()` are already
 * validated when the route declared schemas for them.
 *
 * @example
 * ```ts
 * .post('/', { body: OrderInput }, async (ctx) => {
 *   const input = await ctx.body()
 *   const [row] = await ctx.db.query('INSERT INTO orders (customer) VALUES ($1) RETURNING *', [input.customer])
 *   return ctx.created(row, `/api/orders/${row.id}`)
 * })
 * ```
 */
export interface RestContext<P = Record<string, string>, Q = Record<string, string>, B = unknown> {
  params: P
  query: Q
  /** Request headers, names lower-cased. */
  headers: Record<string, string>
  /** The authenticated user, or undefined on public routes. */
  user: AuthUser | undefined
  /** The REST's database (or the app's default one under serve()). */
  db: Database
  cache: CacheLike
  logger: Logger
  /** Echoed as `X-Request-Id` and included in every error body. */
  requestId: string
  /** The raw Fetch request. */
  req: Request
  /** The Hono context, for anything OnePipe does not wrap. */
  hono: Context
  /** The JSON body (validated by the route's `body` schema if it has one). */
  body<T = B>(): Promise<T>
  /** The uploaded file in multipart field `name` (the first one), if any. */
  file(name: string): Promise<File | undefined>
  /** Every uploaded file, or those of field `name`. */
  files(name?: string): Promise<File[]>
  /** A text field of a multipart or urlencoded form. */
  formField(name: string): Promise<string | undefined>
  /** Every text field of the form; repeated fields become arrays. */
  formFields(): Promise<Record<string, string | string[]>>
  json(data: unknown, status?: number, headers?: Record<string, string>): Response
  created(data: unknown, location?: string): Response
  noContent(): Response
  notFound(message?: string): Response
  badRequest(message?: string, details?: Record<string, unknown>): Response
  unauthorized(message?: string): Response
  forbidden(message?: string): Response
}

/** Builds a JSON error response in OnePipe's error shape. */
export function errorResponse(status: number, code: string, message: string, requestId: string, details?: Record<string, unknown>, headers?: Record<string, string>): Response {
  const body = JSON.stringify({ error: { code, message, ...(details ? { details } : {}), requestId } })
  return new Response(body, { status, headers: { 'content-type': 'application/json; charset=utf-8', 'x-request-id': requestId, ...headers } })
}

function jsonResponse(data: unknown, status: number, requestId: string, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify(data), { status, headers: { 'content-type': 'application/json; charset=utf-8', 'x-request-id': requestId, ...headers } })
}

export interface ContextDeps {
  db: () => Database
  cache: () => CacheLike
  logger: Logger
}

/** Creates the handler context; expensive parts (headers, form) are lazy. */
export function createContext(c: Context, requestId: string, user: AuthUser | undefined, deps: ContextDeps, validated: { params?: unknown; query?: unknown; body?: unknown; hasBody: boolean }): RestContext {
  let headers: Record<string, string> | undefined
  let form: Promise<Record<string, FormValue | FormValue[]>> | undefined
  const readForm = () => {
    form ??= c.req.parseBody({ all: true }).catch((e: unknown) => {
      throw new APIError('BAD_REQUEST', `Cannot read the form body: ${e instanceof Error ? e.message : String(e)}; send multipart/form-data or application/x-www-form-urlencoded`)
    }) as Promise<Record<string, FormValue | FormValue[]>>
    return form
  }
  const all = (v: FormValue | FormValue[] | undefined): FormValue[] => (v === undefined ? [] : Array.isArray(v) ? v : [v])
  return {
    params: (validated.params ?? c.req.param()) as Record<string, string>,
    query: (validated.query ?? c.req.query()) as Record<string, string>,
    get headers() {
      headers ??= Object.fromEntries(c.req.raw.headers)
      return headers
    },
    user,
    get db() {
      return deps.db()
    },
    get cache() {
      return deps.cache()
    },
    logger: deps.logger,
    requestId,
    req: c.req.raw,
    hono: c,
    async body<T>(): Promise<T> {
      if (validated.hasBody) return validated.body as T
      return (await readJson(c)) as T
    },
    async file(name) {
      return all((await readForm())[name]).find((v): v is File => typeof v !== 'string')
    },
    async files(name) {
      const f = await readForm()
      const values = name === undefined ? Object.values(f).flatMap(all) : all(f[name])
      return values.filter((v): v is File => typeof v !== 'string')
    },
    async formField(name) {
      return all((await readForm())[name]).find((v): v is string => typeof v === 'string')
    },
    async formFields() {
      const out: Record<string, string | string[]> = {}
      for (const [k, v] of Object.entries(await readForm())) {
        const texts = all(v).filter((x): x is string => typeof x === 'string')
        if (texts.length === 1) out[k] = texts[0] as string
        else if (texts.length > 1) out[k] = texts
      }
      return out
    },
    json: (data, status = 200, h) => jsonResponse(data, status, requestId, h),
    created: (data, location) => jsonResponse(data, 201, requestId, location ? { location } : undefined),
    noContent: () => new Response(null, { status: 204, headers: { 'x-request-id': requestId } }),
    notFound: (message = 'Not found') => errorResponse(404, 'NOT_FOUND', message, requestId),
    badRequest: (message = 'Bad request', details) => errorResponse(400, 'BAD_REQUEST', message, requestId, details),
    unauthorized: (message = 'Authentication required') => errorResponse(401, 'UNAUTHORIZED', message, requestId, undefined, { 'www-authenticate': 'Bearer' }),
    forbidden: (message = 'Forbidden') => errorResponse(403, 'FORBIDDEN', message, requestId),
  }
}

/** Reads a JSON body, answering 415 for a non-JSON type and 400 for bad JSON. */
export async function readJson(c: Context): Promise<unknown> {
  const type = c.req.header('content-type') ?? ''
  if (type && !/^application\/([\w.+-]*\+)?json\b/i.test(type)) {
    throw new APIError('UNSUPPORTED_MEDIA_TYPE', `Expected a JSON body (Content-Type: application/json), got "${type}"`)
  }
  const text = await c.req.text()
  if (text.length === 0) throw new APIError('BAD_REQUEST', 'The request body is empty; send a JSON document')
  try {
    return JSON.parse(text) as unknown
  } catch (e) {
    throw new APIError('INVALID_JSON', `The request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
}
