import { ValidationError, type Queryable } from '@onepipe/core'
import { listPage, type ListedRow } from './sql-list.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/
const STATUSES = ['Running', 'Completed', 'Failed', 'Cancelled']

/**
 * A pipeline in a list: no input or context (they may be large; the
 * detail has them), its stages counted by status.
 *
 * @example
 * ```ts
 * { pipelineId: '3f…', appId: '9c…', name: 'blueprint', status: 'Running', stageCounts: { Completed: 2, Running: 1, Pending: 2 } }
 * ```
 */
export interface PipelineSummary {
  pipelineId: string
  appId: string
  name: string
  template: string | null
  status: string
  keywords: string[]
  createdAt: string
  updatedAt: string
  finishedAt: string | null
  stageCounts: Record<string, number>
}

/**
 * What a list asks for, as the query string gives it (all optional).
 *
 * @example
 * ```ts
 * { status: 'Failed', q: 'invoice', from: '2026-11-01T00:00:00Z', limit: '50', cursor: 'WyIyMDI2…' }
 * ```
 */
export interface ListQuery {
  status?: string | undefined
  appId?: string | undefined
  q?: string | undefined
  from?: string | undefined
  to?: string | undefined
  limit?: number | undefined
  cursor?: string | undefined
}

const bad = (path: string, message: string) => new ValidationError('query', [{ path, message }])

function time(v: string | undefined, path: string): Date | null {
  if (v === undefined || v === '') return null
  const d = new Date(v)
  if (Number.isNaN(d.getTime())) throw bad(path, 'must be an ISO 8601 time, e.g. 2026-11-30T12:00:00Z')
  return d
}

function decodeCursor(v: string | undefined): { at: string; id: string } | null {
  if (v === undefined || v === '') return null
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(v, 'base64url').toString('utf8'))
  } catch {
    parsed = undefined
  }
  if (!Array.isArray(parsed) || typeof parsed[0] !== 'string' || typeof parsed[1] !== 'string' || !AT.test(parsed[0]) || !UUID.test(parsed[1])) {
    throw bad('cursor', 'is not a cursor this API gave out: pass the nextCursor of the previous page unchanged')
  }
  return { at: parsed[0], id: parsed[1] }
}

const encodeCursor = (r: ListedRow) => Buffer.from(JSON.stringify([r.cursor_at, r.id])).toString('base64url')

/** LIKE treats %, _ and \ specially: a user's text must match as typed. */
const likePrefix = (q: string) => q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)

/**
 * One page of pipelines, newest first, with the cursor of the next page
 * (null on the last). `scope` is an application id when the caller is that
 * application's key, null for people (every application).
 *
 * @throws ValidationError (400) naming the query parameter that is wrong
 * @example
 * ```ts
 * const { pipelines, nextCursor } = await listPipelines(db, null, { status: 'Running', limit: 50 })
 * ```
 */
export async function listPipelines(q: Queryable, scope: string | null, o: ListQuery): Promise<{ pipelines: PipelineSummary[]; nextCursor: string | null }> {
  if (o.status !== undefined && o.status !== '' && !STATUSES.includes(o.status)) throw bad('status', `must be one of ${STATUSES.join(', ')}`)
  const limit = o.limit ?? 50
  if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw bad('limit', 'must be between 1 and 200')
  if (o.q !== undefined && o.q.length > 128) throw bad('q', 'must be at most 128 characters')
  if (o.appId !== undefined && o.appId !== '' && !/^[A-Za-z0-9_.:-]{1,128}$/.test(o.appId)) throw bad('appId', 'must be an application id')
  const appId = scope ?? (o.appId || null)
  // An application's key asking for another application's pipelines sees none of them, as if it asked for its own.
  if (scope !== null && o.appId && o.appId !== scope) return { pipelines: [], nextCursor: null }
  const from = time(o.from, 'from')
  const to = time(o.to, 'to')
  if (from && to && from.getTime() > to.getTime()) throw bad('to', 'must not be before from')
  const rows = await listPage(q, {
    appId,
    status: o.status || null,
    prefix: o.q ? likePrefix(o.q) : null,
    from,
    to,
    after: decodeCursor(o.cursor),
    limit: limit + 1,
  })
  const more = rows.length > limit
  const page = more ? rows.slice(0, limit) : rows
  const last = page.at(-1)
  return {
    pipelines: page.map((r) => ({
      pipelineId: r.id,
      appId: r.app_id,
      name: r.name,
      template: r.template,
      status: r.status,
      keywords: r.keywords,
      createdAt: new Date(r.created_at).toISOString(),
      updatedAt: new Date(r.updated_at).toISOString(),
      finishedAt: r.finished_at ? new Date(r.finished_at).toISOString() : null,
      stageCounts: r.stage_counts ?? {},
    })),
    nextCursor: more && last ? encodeCursor(last) : null,
  }
}
