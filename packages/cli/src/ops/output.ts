// How operator commands print: an aligned table for people, JSON for programs.
// Kept tiny on purpose: the CLI takes no table-printing dependency.

/** A column of {@link printTable}: its heading and how to show one row's cell. */
export interface Column<R> {
  header: string
  value: (row: R) => string
}

/**
 * Shows a value in a table cell: dates as ISO 8601, nothing as `-`, objects
 * as compact JSON, so every cell stays on one line.
 *
 * @example
 * ```ts
 * cell(new Date(0)) // '1970-01-01T00:00:00.000Z'
 * cell(null)        // '-'
 * ```
 */
export function cell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-'
  if (v instanceof Date) return v.toISOString()
  if (typeof v === 'string') return v.replace(/\s*\n\s*/g, ' ')
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v)
  return JSON.stringify(v)
}

/**
 * Prints rows as a left-aligned table with a heading line, or `empty` when
 * there are none (a lone heading reads like an error).
 *
 * @example
 * ```ts
 * printTable([{ name: 'orders', head: 3 }], [{ header: 'FLOW', value: (r) => r.name }, { header: 'HEAD', value: (r) => cell(r.head) }], 'no flows')
 * ```
 */
export function printTable<R>(rows: readonly R[], columns: readonly Column<R>[], empty: string): void {
  if (rows.length === 0) {
    process.stdout.write(`${empty}\n`)
    return
  }
  const lines = [columns.map((c) => c.header), ...rows.map((r) => columns.map((c) => c.value(r)))]
  const widths = columns.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)))
  const text = lines.map((l) => l.map((v, i) => (i === l.length - 1 ? v : v.padEnd(widths[i] ?? 0))).join('  ').trimEnd())
  process.stdout.write(`${text.join('\n')}\n`)
}

/**
 * Prints `label: value` lines with the labels aligned, for one record.
 *
 * @example
 * ```ts
 * printFields([['run', 'order-o1'], ['status', 'running']])
 * ```
 */
export function printFields(fields: readonly (readonly [string, unknown])[]): void {
  const width = Math.max(...fields.map(([k]) => k.length))
  process.stdout.write(fields.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${cell(v)}`).join('\n') + '\n')
}

/**
 * Prints one JSON document (pretty, for `--json`) or one JSON line (a
 * stream's item) on stdout.
 *
 * @example
 * ```ts
 * printJson({ flows: [] })
 * printJson({ offset: 4, data: {} }, 'line')
 * ```
 */
export function printJson(doc: unknown, shape: 'document' | 'line' = 'document'): void {
  process.stdout.write((shape === 'line' ? JSON.stringify(doc) : JSON.stringify(doc, null, 2)) + '\n')
}
