// The operators' pipeline list: filters and a keyset cursor; one SQL
// operation per function, every value a parameter.
import type { Queryable } from '@onepipe/core'

/** A row of the list: the pipeline without its input and context (a page stays small), with its stages counted by status. */
export interface ListedRow {
  id: string
  app_id: string
  name: string
  template: string | null
  status: string
  keywords: string[]
  created_at: Date
  updated_at: Date
  finished_at: Date | null
  /** created_at at full (microsecond) precision, for the cursor: a JS Date would round it to ms and skip rows. */
  cursor_at: string
  stage_counts: Record<string, number> | null
}

/** What a page is filtered by; every field optional (null). */
export interface ListFilter {
  appId: string | null
  status: string | null
  /** Lower-cased prefix of the name or of a keyword, LIKE wildcards already escaped. */
  prefix: string | null
  from: Date | null
  to: Date | null
  /** The last row of the previous page. */
  after: { at: string; id: string } | null
  limit: number
}

/** A page of pipelines, newest first, by (created_at, id). */
export async function listPage(q: Queryable, f: ListFilter): Promise<ListedRow[]> {
  return q.query<ListedRow>(
    `SELECT p.id, p.app_id, p.name, p.template, p.status, p.keywords, p.created_at, p.updated_at, p.finished_at,
            to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at,
            (SELECT jsonb_object_agg(c.status, c.n) FROM (SELECT s.status, count(*) AS n FROM _onepipe_pipeline_stages s
              WHERE s.pipeline_id = p.id GROUP BY s.status) c) AS stage_counts
     FROM _onepipe_pipelines p
     WHERE ($1::text IS NULL OR p.app_id = $1) AND ($2::text IS NULL OR p.status = $2)
       AND ($3::text IS NULL OR lower(p.name) LIKE $3 || '%' OR EXISTS (SELECT 1 FROM unnest(p.keywords) k WHERE lower(k) LIKE $3 || '%'))
       AND ($4::timestamptz IS NULL OR p.created_at >= $4) AND ($5::timestamptz IS NULL OR p.created_at < $5)
       AND ($6::timestamptz IS NULL OR (p.created_at, p.id) < ($6::timestamptz, $7::uuid))
     ORDER BY p.created_at DESC, p.id DESC LIMIT $8`,
    [f.appId, f.status, f.prefix, f.from, f.to, f.after?.at ?? null, f.after?.id ?? null, f.limit],
  )
}
