// What the API, the worker and the bid workflow agree on: schemas (zod) and
// the types inferred from them, plus the few names both processes must spell
// the same way. The worker imports this file too, so it stays free of
// anything that opens a database or a port.
import { z } from 'zod'

/** The pipeline template that analyses an uploaded blueprint. */
export const ANALYSIS_PIPELINE = 'blueprint-analysis'
/** The handler name the analysis stage is handed to; the worker registers it. */
export const ANALYZE_HANDLER = 'blueprint.analyze'
/** Attempts of the analysis stage in all (the first and its retries). */
export const ANALYSIS_ATTEMPTS = 3
/** The application whose API keys the workers use (the oldest of that name when several exist). */
export const WORKERS_APPLICATION = 'pipelineos-workers'
/** The largest blueprint accepted, as the seed asks: 50 MB. */
export const MAX_BLUEPRINT_BYTES = 50 * 1024 * 1024
/** Where the app keeps its data on the embedded default, relative to where it runs. */
export const DEFAULT_DATA_DIR = '.onepipe/pipelineos'
/** The development worker key the app writes beside its embedded database. */
export const WORKER_KEY_FILE = 'worker-key.txt'

/** Permissions of the app's own routes (granted by the roles below). */
export const PERMISSIONS = { read: 'pipelineos:read', write: 'pipelineos:write' } as const

/**
 * The app's roles, added to OnePipe's built-in ones: a `viewer` (and so an
 * operator or admin) may read blueprints and bids; an `estimator` may also
 * upload, add leads and request bids.
 */
export const ROLES = {
  viewer: [PERMISSIONS.read],
  estimator: [PERMISSIONS.read, PERMISSIONS.write],
}

/** The kinds of fixture the analysis reports and the price book prices. */
export const FIXTURE_KINDS = ['toilet', 'urinal', 'sink', 'shower', 'bathtub', 'water_heater', 'dishwasher', 'washing_machine', 'floor_drain', 'hose_bib'] as const
/** One kind of fixture. */
export type FixtureKind = (typeof FIXTURE_KINDS)[number]

/** The file types a blueprint may be, recognised by their first bytes, never by name or header. */
export const BLUEPRINT_MIME = ['application/pdf', 'image/png', 'image/jpeg'] as const
/** One accepted blueprint file type. */
export type BlueprintMime = (typeof BLUEPRINT_MIME)[number]

/** Where a blueprint's analysis stands. */
export const BLUEPRINT_STATUS = ['pending', 'analyzing', 'analyzed', 'failed'] as const
/** One blueprint status. */
export type BlueprintStatus = (typeof BLUEPRINT_STATUS)[number]

// Text that PostgreSQL's text type can hold and that prints on one line in a PDF.
const Text = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters')

/** A fixture found on a blueprint. */
export const Fixture = z.object({
  kind: z.enum(FIXTURE_KINDS),
  quantity: z.number().int().min(1).max(10_000),
  room: Text(100).nullable(),
  /** How sure the analysis is, in whole percent (no floats in the tables). */
  confidencePct: z.number().int().min(0).max(100),
})
/** A fixture found on a blueprint. */
export type Fixture = z.infer<typeof Fixture>

/** At most this many fixture lines per blueprint. */
export const MAX_FIXTURES = 500

/** What the pipeline hands the worker: which blueprint, and what it is. */
export const AnalysisInput = z.object({
  blueprintId: z.uuid(),
  mime: z.enum(BLUEPRINT_MIME),
  sizeBytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
})
/** What the pipeline hands the worker. */
export type AnalysisInput = z.infer<typeof AnalysisInput>

/**
 * What the worker reports to the app about one blueprint, naming the
 * pipeline it works for so that a report of a superseded run is refused.
 */
export const AnalysisReport = z.discriminatedUnion('status', [
  z.object({ status: z.literal('analyzing'), pipelineId: z.uuid(), attempt: z.number().int().min(1) }),
  z.object({ status: z.literal('analyzed'), pipelineId: z.uuid(), fixtures: z.array(Fixture).max(MAX_FIXTURES), provider: Text(64) }),
  z.object({ status: z.literal('failed'), pipelineId: z.uuid(), error: z.object({ code: Text(128), message: z.string().min(1).max(2000) }) }),
])
/** What the worker reports to the app about one blueprint. */
export type AnalysisReport = z.infer<typeof AnalysisReport>

/** A new lead: a customer asking for a bid. */
export const NewLead = z.object({
  name: Text(200),
  email: z.email().max(254),
  company: Text(200).optional(),
  phone: Text(40).optional(),
})
/** A new lead. */
export type NewLead = z.infer<typeof NewLead>

/** A bid request for one blueprint: who it is for. */
export const NewBid = z.object({ leadId: z.uuid() })

/** Path parameters naming one record by its id. */
export const IdParams = z.object({ id: z.uuid() })

/** One event of the `blueprint-events` flow: a blueprint's status changed. */
export const BlueprintEvent = z.object({
  type: z.literal('blueprint.status'),
  blueprintId: z.uuid(),
  status: z.enum(BLUEPRINT_STATUS),
  at: z.string(),
  fixtures: z.number().int().nonnegative().optional(),
  error: z.string().optional(),
})
/** One event of the `blueprint-events` flow. */
export type BlueprintEvent = z.infer<typeof BlueprintEvent>
