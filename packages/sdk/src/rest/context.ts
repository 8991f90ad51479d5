import type { CacheLike, Database, Logger } from '@onepipe/core'
import type { Context } from 'hono'
import type { AuthUser } from './auth.js'
import { APIError, errorResponse, readJson } from '../http/index.js'

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
  /**
   * Aborted when the client goes away or the app begins to shut down: pass it
   * to fetch() and database calls, and end a long-lived response (SSE,
   * long-poll) when it fires, so shutdown never waits on it.
   */
  signal: AbortSignal
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

function jsonResponse(data: unknown, status: number, requestId: string, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify(data), { status, headers: { 'content-type': 'application/json; charset=utf-8', 'x-request-id': requestId, ...headers } })
}

export interface ContextDeps {
  db: () => Database
  cache: () => CacheLike
  logger: Logger
  /** serve()'s shutdown signal, when running under serve(). */
  shutdown: () => AbortSignal | undefined
}

type Form = Record<string, FormValue | FormValue[]>

const asList = (v: FormValue | FormValue[] | undefined): FormValue[] => (v === undefined ? [] : Array.isArray(v) ? v : [v])
const isFile = (v: FormValue): v is File => typeof v !== 'string'
const isText = (v: FormValue): v is string => typeof v === 'string'

/**
 * The handler context. A class rather than an object literal so a request
 * allocates one object, not a closure per helper; headers and the form body
 * are read only when asked for.
 */
class Ctx implements RestContext {
  readonly user: AuthUser | undefined
  readonly requestId: string
  readonly hono: Context
  readonly #deps: ContextDeps
  readonly #validated: { params?: unknown; query?: unknown; body?: unknown; hasBody: boolean }
  #params: Record<string, string> | undefined
  #query: Record<string, string> | undefined
  #headers: Record<string, string> | undefined
  #form: Promise<Form> | undefined
  #logger: Logger | undefined

  constructor(c: Context, requestId: string, user: AuthUser | undefined, deps: ContextDeps, validated: { params?: unknown; query?: unknown; body?: unknown; hasBody: boolean }) {
    this.hono = c
    this.requestId = requestId
    this.user = user
    this.#deps = deps
    this.#validated = validated
  }

  // Parsed on first use: many handlers never look at the query string.
  get params(): Record<string, string> {
    this.#params ??= (this.#validated.params ?? this.hono.req.param()) as Record<string, string>
    return this.#params
  }
  get query(): Record<string, string> {
    this.#query ??= (this.#validated.query ?? this.hono.req.query()) as Record<string, string>
    return this.#query
  }

  get headers(): Record<string, string> {
    this.#headers ??= Object.fromEntries(this.hono.req.raw.headers)
    return this.#headers
  }
  get db(): Database {
    return this.#deps.db()
  }
  get cache(): CacheLike {
    return this.#deps.cache()
  }
  /** The app logger bound to this request's id (created on first use). */
  get logger(): Logger {
    this.#logger ??= this.#deps.logger.child({ requestId: this.requestId })
    return this.#logger
  }
  get req(): Request {
    return this.hono.req.raw
  }
  // Built on first use: most handlers never need it.
  get signal(): AbortSignal {
    const down = this.#deps.shutdown()
    return down ? AbortSignal.any([down, this.hono.req.raw.signal]) : this.hono.req.raw.signal
  }

  async body<T>(): Promise<T> {
    if (this.#validated.hasBody) return this.#validated.body as T
    return (await readJson(this.hono)) as T
  }

  #readForm(): Promise<Form> {
    this.#form ??= this.hono.req.parseBody({ all: true }).catch((e: unknown) => {
      throw new APIError('BAD_REQUEST', `Cannot read the form body: ${e instanceof Error ? e.message : String(e)}; send multipart/form-data or application/x-www-form-urlencoded`)
    }) as Promise<Form>
    return this.#form
  }
  async file(name: string): Promise<File | undefined> {
    return asList((await this.#readForm())[name]).find(isFile)
  }
  async files(name?: string): Promise<File[]> {
    const f = await this.#readForm()
    return (name === undefined ? Object.values(f).flatMap(asList) : asList(f[name])).filter(isFile)
  }
  async formField(name: string): Promise<string | undefined> {
    return asList((await this.#readForm())[name]).find(isText)
  }
  async formFields(): Promise<Record<string, string | string[]>> {
    const out: Record<string, string | string[]> = {}
    for (const [k, v] of Object.entries(await this.#readForm())) {
      const texts = asList(v).filter(isText)
      if (texts.length === 1) out[k] = texts[0] as string
      else if (texts.length > 1) out[k] = texts
    }
    return out
  }

  json(data: unknown, status = 200, h?: Record<string, string>): Response {
    return jsonResponse(data, status, this.requestId, h)
  }
  created(data: unknown, location?: string): Response {
    return jsonResponse(data, 201, this.requestId, location ? { location } : undefined)
  }
  noContent(): Response {
    return new Response(null, { status: 204, headers: { 'x-request-id': this.requestId } })
  }
  notFound(message = 'Not found'): Response {
    return errorResponse(404, 'NOT_FOUND', message, this.requestId)
  }
  badRequest(message = 'Bad request', details?: Record<string, unknown>): Response {
    return errorResponse(400, 'BAD_REQUEST', message, this.requestId, details)
  }
  unauthorized(message = 'Authentication required'): Response {
    return errorResponse(401, 'UNAUTHORIZED', message, this.requestId, undefined, { 'www-authenticate': 'Bearer' })
  }
  forbidden(message = 'Forbidden'): Response {
    return errorResponse(403, 'FORBIDDEN', message, this.requestId)
  }
}

/** Creates the handler context for one request. */
export function createContext(c: Context, requestId: string, user: AuthUser | undefined, deps: ContextDeps, validated: { params?: unknown; query?: unknown; body?: unknown; hasBody: boolean }): RestContext {
  return new Ctx(c, requestId, user, deps, validated)
}

