import { createHash, randomUUID } from 'node:crypto'
import {
  ConflictError,
  Flow,
  NotFoundError,
  OnePipeError,
  PayloadTooLargeError,
  Pipeline,
  REST,
  sseResponse,
  ValidationError,
  type Auth,
  type Database,
  type Queryable,
  can,
  type RateLimit,
} from '@onepipe/sdk'
import {
  ANALYSIS_ATTEMPTS,
  ANALYSIS_PIPELINE,
  ANALYZE_HANDLER,
  AnalysisReport,
  BLUEPRINT_MIME,
  BlueprintEvent,
  IdParams,
  MAX_BLUEPRINT_BYTES,
  PERMISSIONS,
  type AnalysisInput,
  type BlueprintStatus,
  type Fixture,
} from './contracts.js'
import { asBuffer, cleanFilename, sniffBlueprint } from './files.js'
import type { WorkersApplication } from './setup.js'

/** The blueprint-events flow: every status change of every blueprint, in commit order. */
export type BlueprintEvents = Flow<BlueprintEvent>

/**
 * Every status change of every blueprint, appended in the transaction that
 * makes it (so an event exists exactly when its change does). Clients follow
 * one blueprint at `GET /api/blueprints/:id/events`; operators read the whole
 * flow at `/__onepipe/flows/blueprint-events/stream`.
 *
 * @example
 * ```ts
 * const events = createBlueprintEvents(db)
 * ```
 */
export function createBlueprintEvents(db: Database): BlueprintEvents {
  return Flow.create('blueprint-events').schema(BlueprintEvent).db(db).retention({ maxAge: '30d' }).build()
}

/**
 * The analysis pipeline: one stage, run by an external worker pulling
 * `blueprint.analyze` with the workers' API key. A failed attempt is retried
 * twice, with backoff; an attempt longer than ten minutes is over.
 *
 * @example
 * ```ts
 * const analysis = createAnalysisPipeline(db)
 * await analysis.run(input, { application: appId, idempotencyKey: `blueprint:${id}:0` })
 * ```
 */
export function createAnalysisPipeline(db: Database): Pipeline {
  return Pipeline.create(ANALYSIS_PIPELINE)
    .stage('analyze', { handler: ANALYZE_HANDLER, timeout: '10m', retry: { attempts: ANALYSIS_ATTEMPTS, backoff: 'exponential', delay: '2s', maxDelay: '1m' } })
    .db(db)
    .build()
}

interface BlueprintRow {
  id: string
  filename: string
  mime: string
  size_bytes: number
  sha256: string
  status: BlueprintStatus
  pipeline_id: string | null
  requeues: number
  provider: string | null
  error: { code: string; message: string } | null
  uploaded_by: string
  created_at: Date
  updated_at: Date
  analyzed_at: Date | null
}

interface FixtureRow {
  kind: Fixture['kind']
  quantity: number
  room: string | null
  confidence_pct: number
}

const COLUMNS = 'id, filename, mime, size_bytes, sha256, status, pipeline_id, requeues, provider, error, uploaded_by, created_at, updated_at, analyzed_at'

/** A blueprint as the API answers it: its row, its fixtures, where to follow it. */
function view(row: BlueprintRow, fixtures: FixtureRow[]) {
  return {
    id: row.id,
    filename: row.filename,
    mime: row.mime,
    sizeBytes: row.size_bytes,
    sha256: row.sha256,
    status: row.status,
    error: row.error,
    provider: row.provider,
    pipelineId: row.pipeline_id,
    uploadedBy: row.uploaded_by,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    analyzedAt: row.analyzed_at,
    fixtures: fixtures.map((f) => ({ kind: f.kind, quantity: f.quantity, room: f.room, confidencePct: f.confidence_pct })),
    links: { self: `/api/blueprints/${row.id}`, events: `/api/blueprints/${row.id}/events`, file: `/api/blueprints/${row.id}/file`, bids: `/api/blueprints/${row.id}/bids` },
  }
}

/**
 * One blueprint with its fixtures, or a 404.
 *
 * @throws NotFoundError `BLUEPRINT_NOT_FOUND`
 */
export async function loadBlueprint(q: Queryable, id: string): Promise<ReturnType<typeof view>> {
  const [row] = await q.query<BlueprintRow>(`SELECT ${COLUMNS} FROM blueprints WHERE id = $1`, [id])
  if (!row) throw new NotFoundError('BLUEPRINT_NOT_FOUND', `No blueprint ${id}`)
  const fixtures = await q.query<FixtureRow>('SELECT kind, quantity, room, confidence_pct FROM blueprint_fixtures WHERE blueprint_id = $1 ORDER BY position', [id])
  return view(row, fixtures)
}

/**
 * Starts the analysis of a stored blueprint: one pipeline run per
 * `attempt` (0 at upload, then one per re-queue), idempotent by that key,
 * so a retried call never starts a second run for the same attempt.
 *
 * @returns the pipeline's id
 */
export async function startAnalysis(analysis: Pipeline, workers: WorkersApplication, input: AnalysisInput, attempt: number): Promise<string> {
  const run = await analysis.run(input, { application: await workers.id(), idempotencyKey: `blueprint:${input.blueprintId}:${attempt}`, keywords: [input.blueprintId] })
  return run.pipelineId
}

/**
 * Applies a worker's report to a blueprint, with its event, in one
 * transaction. A report names its pipeline: one of a run that is no longer
 * the blueprint's is refused (409 `STALE_PIPELINE`); a late `analyzing` or
 * `failed` of a run that already reported its fixtures changes nothing.
 *
 * @throws NotFoundError `BLUEPRINT_NOT_FOUND`, ConflictError `STALE_PIPELINE`
 */
export async function applyReport(db: Database, events: BlueprintEvents, id: string, report: AnalysisReport): Promise<{ status: BlueprintStatus; applied: boolean }> {
  return db.transaction(async (tx) => {
    const [row] = await tx.query<{ status: BlueprintStatus; pipeline_id: string | null }>('SELECT status, pipeline_id FROM blueprints WHERE id = $1 FOR UPDATE', [id])
    if (!row) throw new NotFoundError('BLUEPRINT_NOT_FOUND', `No blueprint ${id}`)
    // A run whose id is not stored yet is the upload's own, reporting before the upload recorded it.
    if (row.pipeline_id !== null && row.pipeline_id !== report.pipelineId) {
      throw new ConflictError('STALE_PIPELINE', `Pipeline ${report.pipelineId} no longer analyses blueprint ${id} (pipeline ${row.pipeline_id} does)`)
    }
    if (row.status === 'analyzed' && report.status !== 'analyzed') return { status: row.status, applied: false }
    const at = new Date().toISOString()
    if (report.status === 'analyzing') {
      await tx.execute("UPDATE blueprints SET status = 'analyzing', pipeline_id = $2, error = NULL, updated_at = now() WHERE id = $1", [id, report.pipelineId])
      await events.appendIn(tx, { type: 'blueprint.status', blueprintId: id, status: 'analyzing', at })
    } else if (report.status === 'analyzed') {
      await tx.execute('DELETE FROM blueprint_fixtures WHERE blueprint_id = $1', [id])
      // One statement for every fixture: the list goes as one JSON text, unpacked in SQL.
      await tx.execute(
        `INSERT INTO blueprint_fixtures (blueprint_id, position, kind, quantity, room, confidence_pct)
         SELECT $1, e.ord - 1, e.f->>'kind', (e.f->>'quantity')::int, e.f->>'room', (e.f->>'confidencePct')::int
         FROM jsonb_array_elements($2::text::jsonb) WITH ORDINALITY AS e(f, ord)`,
        [id, JSON.stringify(report.fixtures)],
      )
      await tx.execute("UPDATE blueprints SET status = 'analyzed', pipeline_id = $2, provider = $3, error = NULL, analyzed_at = now(), updated_at = now() WHERE id = $1", [id, report.pipelineId, report.provider])
      await events.appendIn(tx, { type: 'blueprint.status', blueprintId: id, status: 'analyzed', at, fixtures: report.fixtures.length })
    } else {
      await tx.execute("UPDATE blueprints SET status = 'failed', pipeline_id = $2, error = $3::text::jsonb, updated_at = now() WHERE id = $1", [id, report.pipelineId, JSON.stringify(report.error)])
      await events.appendIn(tx, { type: 'blueprint.status', blueprintId: id, status: 'failed', at, error: `${report.error.code}: ${report.error.message}`.slice(0, 500) })
    }
    return { status: report.status, applied: true }
  })
}

/** What the blueprints API needs besides its database. */
export interface BlueprintsDeps {
  auth: Auth
  events: BlueprintEvents
  analysis: Pipeline
  workers: WorkersApplication
  rateLimit?: RateLimit
}

/** The one file of an upload, or a 400 naming the field. */
async function uploadedFile(ctx: { files(name?: string): Promise<File[]> }): Promise<File> {
  const files = await ctx.files('file')
  if (files.length !== 1) throw new ValidationError('upload', [{ path: 'file', message: files.length === 0 ? 'send the blueprint as the multipart/form-data field "file"' : 'send one file per upload' }])
  const file = files[0] as File
  if (file.size > MAX_BLUEPRINT_BYTES) throw new PayloadTooLargeError('blueprint', MAX_BLUEPRINT_BYTES, file.size)
  return file
}

/**
 * The blueprints API under `/api/blueprints`: upload (starts the analysis),
 * read with fixtures, follow live, and the two routes of the workers'
 * application (read the file, report the analysis).
 *
 * @example
 * ```ts
 * const api = createBlueprintsApi(db, { auth, events, analysis, workers })
 * ```
 */
export function createBlueprintsApi(db: Database, d: BlueprintsDeps) {
  const b = REST.create('blueprints').basePath('/api/blueprints').db(db).auth(d.auth).maxUploadSize(MAX_BLUEPRINT_BYTES)
  if (d.rateLimit) b.rateLimit(d.rateLimit)
  return b
    .post('/', { permission: PERMISSIONS.write, status: 201, summary: 'Upload a blueprint (multipart field "file": PDF, PNG or JPEG, up to 50 MB); its analysis starts at once' }, async (ctx) => {
      const file = await uploadedFile(ctx)
      const bytes = new Uint8Array(await file.arrayBuffer())
      const mime = sniffBlueprint(bytes)
      if (!mime) throw new OnePipeError('UNSUPPORTED_FILE_TYPE', 'The file is not a PDF, PNG or JPEG (judged by its content, not its name)', { status: 400, details: { accepted: [...BLUEPRINT_MIME] } })
      const id = randomUUID()
      const sha256 = createHash('sha256').update(bytes).digest('hex')
      const by = ctx.user?.email ?? ctx.user?.id ?? 'unknown'
      await ctx.db.transaction(async (tx) => {
        await tx.execute('INSERT INTO blueprints (id, filename, mime, size_bytes, sha256, uploaded_by) VALUES ($1, $2, $3, $4, $5, $6)', [id, cleanFilename(file.name), mime, bytes.byteLength, sha256, by])
        await tx.execute('INSERT INTO blueprint_files (blueprint_id, content) VALUES ($1, $2::bytea)', [id, asBuffer(bytes)])
        await d.events.appendIn(tx, { type: 'blueprint.status', blueprintId: id, status: 'pending', at: new Date().toISOString() })
      })
      let pipelineId: string
      try {
        pipelineId = await startAnalysis(d.analysis, d.workers, { blueprintId: id, mime, sizeBytes: bytes.byteLength, sha256 }, 0)
      } catch (e) {
        // Nothing would ever analyse it: take the upload back and answer the failure.
        await ctx.db.execute('DELETE FROM blueprints WHERE id = $1', [id]).catch((cleanup: unknown) => ctx.logger.error({ err: cleanup, blueprintId: id }, 'could not remove a blueprint whose analysis did not start; the daily re-queue will start it'))
        throw e
      }
      await ctx.db.execute('UPDATE blueprints SET pipeline_id = $2 WHERE id = $1 AND pipeline_id IS NULL', [id, pipelineId])
      return ctx.created(await loadBlueprint(ctx.db, id), `/api/blueprints/${id}`)
    })
    .get('/:id', { params: IdParams, permission: PERMISSIONS.read, summary: 'A blueprint: its status and the fixtures found' }, async (ctx) => loadBlueprint(ctx.db, ctx.params.id))
    .get('/:id/events', { params: IdParams, permission: PERMISSIONS.read, summary: "A blueprint's status changes, live (text/event-stream; resume with Last-Event-ID)" }, async (ctx) => {
      await loadBlueprint(ctx.db, ctx.params.id)
      const last = ctx.headers['last-event-id']
      if (last !== undefined && !/^\d+$/.test(last)) throw new ValidationError('Last-Event-ID', [{ path: 'Last-Event-ID', message: 'must be an offset (a non-negative integer)' }])
      const ac = new AbortController()
      const it = d.events.stream({ live: true, offset: last === undefined ? 0 : Number(last), signal: ac.signal })[Symbol.asyncIterator]()
      const id = ctx.params.id
      return sseResponse(
        async () => {
          for (;;) {
            const r = await it.next()
            if (r.done) return undefined
            if (r.value.data.blueprintId === id) return { id: String(r.value.offset), event: 'status', data: JSON.stringify(r.value.data) }
          }
        },
        { onClose: () => ac.abort(), signal: ctx.signal },
      )
    })
    .get('/:id/file', { params: IdParams, summary: "The blueprint's file (the workers' key, or a reader)" }, async (ctx) => {
      if (!(await d.workers.holds(ctx.user)) && !can(ctx.user, PERMISSIONS.read)) throw new OnePipeError('FORBIDDEN', "Only the workers' application or a reader may download a blueprint", { status: 403 })
      const [row] = await ctx.db.query<{ mime: string; filename: string; content: Uint8Array }>('SELECT b.mime, b.filename, f.content FROM blueprints b JOIN blueprint_files f ON f.blueprint_id = b.id WHERE b.id = $1', [ctx.params.id])
      if (!row) throw new NotFoundError('BLUEPRINT_NOT_FOUND', `No blueprint ${ctx.params.id}`)
      const body = asBuffer(row.content)
      return new Response(body, { headers: { 'content-type': row.mime, 'content-length': String(body.byteLength), 'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(row.filename)}`, 'x-request-id': ctx.requestId } })
    })
    .post('/:id/analysis', { params: IdParams, body: AnalysisReport, summary: "A worker's report on the analysis (the workers' application only)" }, async (ctx) => {
      if (!(await d.workers.holds(ctx.user))) throw new OnePipeError('FORBIDDEN', "Only a key of the workers' application may report an analysis", { status: 403 })
      return applyReport(ctx.db, d.events, ctx.params.id, await ctx.body())
    })
    .build()
}
