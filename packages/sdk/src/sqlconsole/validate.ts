import { ValidationError, type ValidationIssue } from '@onepipe/core'

/**
 * The longest SQL text the console reads, in UTF-8 bytes (64 KiB); also the
 * body limit of `POST /__onepipe/sql`.
 *
 * @example
 * ```ts
 * if (Buffer.byteLength(sql) > SQL_CONSOLE_MAX_SQL_BYTES) showError('at most 64 KiB of SQL')
 * ```
 */
export const SQL_CONSOLE_MAX_SQL_BYTES = 64 * 1024

/**
 * Functions refused anywhere in a console query, by their name in lower case
 * whatever the schema. Each either reaches outside the database (files,
 * other servers), acts on other sessions or the server, keeps state on the
 * pooled connection after the transaction (session settings, session-level
 * advisory locks), runs SQL given as text (which the parser never sees), or
 * just holds a connection for nothing (sleeps).
 */
const DENIED_FUNCTIONS = new Set([
  // files and the server's folders
  'pg_read_file', 'pg_read_binary_file', 'pg_ls_dir', 'pg_stat_file', 'pg_ls_logdir', 'pg_ls_waldir', 'pg_ls_tmpdir',
  'pg_ls_archive_statusdir', 'pg_ls_logicalsnapdir', 'pg_ls_logicalmapdir', 'pg_ls_replslotdir', 'pg_ls_summariesdir',
  'pg_file_write', 'pg_file_rename', 'pg_file_unlink', 'pg_file_sync', 'pg_logdir_ls',
  // large objects live outside the tables and lo_import/lo_export touch the server's files
  'loread', 'lowrite',
  // sleeping holds a pooled connection for nothing
  'pg_sleep', 'pg_sleep_for', 'pg_sleep_until',
  // settings: set_config(…, false) outlives the transaction on the pooled connection
  'set_config',
  // other sessions and the server itself
  'pg_terminate_backend', 'pg_cancel_backend', 'pg_reload_conf', 'pg_rotate_logfile', 'pg_switch_wal', 'pg_promote',
  'pg_wal_replay_pause', 'pg_wal_replay_resume', 'pg_backup_start', 'pg_backup_stop', 'pg_start_backup', 'pg_stop_backup',
  'pg_create_restore_point', 'pg_log_backend_memory_contexts', 'pg_import_system_collations', 'pg_notify',
  // they change a sequence, and PostgreSQL refuses them in a read-only transaction only once they run
  'nextval', 'setval',
  // SQL given as text runs without passing this parser
  'query_to_xml', 'query_to_xmlschema', 'query_to_xml_and_xmlschema', 'cursor_to_xml', 'cursor_to_xmlschema', 'ts_stat', 'ts_rewrite',
  // a table or a whole schema read by its name given as a value, which the parser sees as a string
  'table_to_xml', 'table_to_xmlschema', 'table_to_xml_and_xmlschema', 'schema_to_xml', 'schema_to_xmlschema', 'schema_to_xml_and_xmlschema',
  'database_to_xml', 'database_to_xmlschema', 'database_to_xml_and_xmlschema',
])

/** In a console confined to one schema (a tenant's), the only `pg_` functions allowed: they read nothing but their argument. */
const CONFINED_PG_FUNCTIONS = new Set(['pg_typeof', 'pg_column_size'])
/**
 * Also refused in a confined console: functions that look another schema's
 * objects up by a name given as text (so the parser never sees it) or read
 * the server's settings.
 */
const CONFINED_DENIED = new Set(['currval', 'lastval', 'current_setting', 'to_regclass', 'to_regtype', 'to_regtypemod', 'to_regproc', 'to_regprocedure', 'to_regoper', 'to_regoperator', 'to_regnamespace', 'to_regrole', 'to_regcollation', 'has_table_privilege', 'has_schema_privilege', 'has_column_privilege', 'has_sequence_privilege', 'has_function_privilege', 'obj_description', 'col_description', 'shobj_description', 'format_type', 'version', 'inet_server_addr', 'inet_server_port'])

/** Name prefixes refused the same way: whole families of the functions above. */
const DENIED_PREFIXES = ['dblink', 'pg_advisory', 'pg_try_advisory', 'lo_', 'pg_stat_reset', 'pg_logical_', 'pg_replication_', 'pg_create_', 'pg_drop_', 'pg_copy_']

/** Whether the console refuses a call to `name` (any case, any schema). */
export function isDeniedFunction(name: string): boolean {
  const n = name.toLowerCase()
  return DENIED_FUNCTIONS.has(n) || DENIED_PREFIXES.some((p) => n.startsWith(p))
}

/** The statement a console query runs, cut from the text the caller sent. */
export interface CheckedSelect {
  /** The one statement, without the comments and `;` around it. */
  text: string
  /** Characters of the caller's SQL before `text`, to map a server's error position back onto it. */
  offset: number
}

type Parser = typeof import('libpg-query')
let parser: Promise<Parser> | undefined

/** The parser loads (and compiles its WASM) on the first console query, never at import. */
function loadParser(): Promise<Parser> {
  parser ??= import('libpg-query').catch((e: unknown) => {
    parser = undefined
    throw e
  })
  return parser
}

function refuse(message: string, extra: Record<string, unknown> = {}): ValidationError {
  const issue: ValidationIssue & Record<string, unknown> = { path: 'sql', message, ...extra }
  return new ValidationError('SQL query', [issue])
}

/** `DeleteStmt` → `DELETE`, `CreateTableAsStmt` → `CREATE TABLE AS`. */
function statementName(node: string): string {
  const known: Record<string, string> = { VariableSetStmt: 'SET', VariableShowStmt: 'SHOW', TransactionStmt: 'a transaction command', ExplainStmt: 'EXPLAIN', CopyStmt: 'COPY', DoStmt: 'DO', CallStmt: 'CALL' }
  return known[node] ?? node.replace(/Stmt$/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase()
}

const DATA_MODIFYING = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt'])

/**
 * Walks the whole parse tree (without recursion: a deeply nested expression
 * must not overflow the stack) and throws at the first thing refused.
 */
function checkTree(root: unknown, confine: string | undefined): void {
  const stack: unknown[] = [root]
  while (stack.length > 0) {
    const node = stack.pop()
    if (Array.isArray(node)) {
      for (const x of node as unknown[]) stack.push(x)
      continue
    }
    if (typeof node !== 'object' || node === null) continue
    for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
      if (key === 'FuncCall') {
        const parts = ((value as { funcname?: { String?: { sval?: string } }[] }).funcname ?? []).map((p) => p.String?.sval ?? '')
        const name = parts.at(-1) ?? ''
        if (isDeniedFunction(name)) throw refuse(`function ${name.toLowerCase()} is not allowed`, { function: parts.join('.') })
        if (confine !== undefined) confinedFunction(parts, confine)
      } else if (key === 'RangeVar' && confine !== undefined) {
        confinedRelation(value as { schemaname?: string; relname?: string }, confine)
      } else if (key === 'TypeCast' && confine !== undefined) {
        // 'other.table'::regclass looks a name up in any schema: the reg* types are not for a confined console.
        const names = ((value as { typeName?: { names?: { String?: { sval?: string } }[] } }).typeName?.names ?? []).map((p) => p.String?.sval ?? '')
        const type = (names.at(-1) ?? '').toLowerCase()
        if (type.startsWith('reg') || type === 'oid') throw refuse(`a cast to ${type} is not allowed in a console confined to one schema: it looks names up in every schema`, { type })
      } else if (DATA_MODIFYING.has(key)) {
        throw refuse(`data-modifying CTE (${statementName(key)}) is not allowed: the console only reads`)
      } else if (key.endsWith('Stmt') && key !== 'SelectStmt') {
        throw refuse(`${statementName(key)} is not allowed inside a query`)
      } else if (key === 'SelectStmt') {
        const s = value as { intoClause?: unknown; lockingClause?: unknown[] }
        if (s.intoClause !== undefined) throw refuse('SELECT … INTO is not allowed: it creates a table')
        if (s.lockingClause !== undefined && s.lockingClause.length > 0) throw refuse('FOR UPDATE / FOR SHARE is not allowed: the console takes no row locks')
      }
      stack.push(value)
    }
  }
}

/**
 * A table or view named in a confined console: in its own schema, never
 * another (another tenant's), nor a system catalog or statistics view
 * (`pg_stat_activity` shows other sessions' queries), nor information_schema.
 */
function confinedRelation(r: { schemaname?: string; relname?: string }, schema: string): void {
  const name = [r.schemaname, r.relname].filter((x) => x !== undefined).join('.')
  if (r.schemaname !== undefined && r.schemaname !== schema) throw refuse(`${name} is outside this console's schema; name tables of ${schema} only`, { relation: name })
  if ((r.relname ?? '').toLowerCase().startsWith('pg_')) throw refuse(`${name} is a system catalog; this console reads its own schema's tables only`, { relation: name })
}

/** A function called in a confined console: unqualified or in its schema, and no `pg_` function that reads server state. */
function confinedFunction(parts: string[], schema: string): void {
  const name = (parts.at(-1) ?? '').toLowerCase()
  const qualifier = parts.length > 1 ? parts[0] : undefined
  if (qualifier !== undefined && qualifier !== schema && qualifier !== 'pg_catalog') throw refuse(`function ${parts.join('.')} is outside this console's schema`, { function: parts.join('.') })
  if (CONFINED_DENIED.has(name)) throw refuse(`function ${name} is not allowed in a console confined to one schema: it looks up other schemas' objects or the server's settings`, { function: parts.join('.') })
  if (name.startsWith('pg_') && !CONFINED_PG_FUNCTIONS.has(name)) throw refuse(`function ${name} is not allowed in a console confined to one schema: it reads the server's state`, { function: parts.join('.') })
}

/**
 * Parses `sql` with PostgreSQL's own parser and checks it is one read-only
 * SELECT; returns that statement's text. See {@link validateSqlQuery}.
 * With `confine`, also refuses every table, view and function outside that
 * schema (a tenant's console).
 */
export async function checkSelect(sql: unknown, confine?: string): Promise<CheckedSelect> {
  if (typeof sql !== 'string') throw refuse(`must be a string, got ${sql === null ? 'null' : typeof sql}`)
  const bytes = Buffer.byteLength(sql)
  if (bytes > SQL_CONSOLE_MAX_SQL_BYTES) throw refuse(`is ${bytes} bytes; the console reads at most ${SQL_CONSOLE_MAX_SQL_BYTES}`, { limitBytes: SQL_CONSOLE_MAX_SQL_BYTES })
  if (sql.trim() === '') throw refuse('is empty; send one SELECT statement')
  // The parser reads a C string (a NUL would end it early, hiding what follows from the check) and UTF-8.
  if (sql.includes('\0')) throw refuse('holds a NUL character')
  if (!sql.isWellFormed()) throw refuse('holds a lone surrogate, which is not valid Unicode text')

  const { parse } = await loadParser()
  let tree: Awaited<ReturnType<Parser['parse']>>
  try {
    tree = await parse(sql)
  } catch (e) {
    const details = (e as { sqlDetails?: { message?: string; cursorPosition?: number } }).sqlDetails
    const message = details?.message ?? (e instanceof Error ? e.message : String(e))
    // PostgreSQL counts positions from 1, as in its own error messages.
    const position = details?.cursorPosition !== undefined && details.cursorPosition >= 0 ? details.cursorPosition + 1 : undefined
    throw refuse(position === undefined ? message : `${message} (at character ${position})`, position === undefined ? {} : { position })
  }

  const stmts = tree.stmts ?? []
  if (stmts.length === 0) throw refuse('holds no statement (only comments); send one SELECT statement')
  if (stmts.length > 1) {
    const kinds = stmts.map((s) => statementName(Object.keys(s.stmt ?? {})[0] ?? 'unknown'))
    throw refuse(`only one statement is allowed, found ${stmts.length} (${kinds.join(', ')})`)
  }
  const only = stmts[0]
  const kind = Object.keys(only?.stmt ?? {})[0] ?? 'unknown'
  if (kind !== 'SelectStmt') {
    throw refuse(DATA_MODIFYING.has(kind) ? `${statementName(kind)} is not allowed: the console only reads` : `${statementName(kind)} is not allowed: send one SELECT statement`)
  }
  checkTree(only?.stmt, confine)

  // The parser's locations count UTF-8 bytes.
  const buf = Buffer.from(sql)
  const start = only?.stmt_location ?? 0
  const end = only?.stmt_len ? start + only.stmt_len : buf.length
  return { text: buf.subarray(start, end).toString(), offset: buf.subarray(0, start).toString().length }
}

/**
 * How many statements PostgreSQL's parser reads in `sql`. The console checks
 * each query it builds around a caller's statement with it before sending:
 * PostgreSQL runs several `;`-separated statements in one call without
 * parameters.
 */
export async function statementCount(sql: string): Promise<number> {
  const { parse } = await loadParser()
  return (await parse(sql)).stmts?.length ?? 0
}

/**
 * Checks that `sql` is exactly one read-only `SELECT`, using PostgreSQL's own
 * parser (libpg-query), never a pattern: a `;` or `--` inside a string
 * literal is text, a statement hidden after a comment is a second statement.
 *
 * Accepted: `SELECT`, `WITH … SELECT`, `UNION` / `INTERSECT` / `EXCEPT`,
 * `VALUES`, `TABLE t`. Refused anywhere in the tree: a second statement, any
 * other statement (`INSERT`, `COPY`, `EXPLAIN`, `SET`…), a data-modifying CTE,
 * `SELECT … INTO`, `FOR UPDATE` / `FOR SHARE`, and calls to functions that
 * reach outside the query (files, sleeps, other sessions, `set_config`,
 * advisory locks, `nextval`/`setval`, `dblink*`, `lo_*`, SQL-as-text runners
 * such as `query_to_xml`), by name in any case and any schema. The text is
 * at most 64 KiB.
 *
 * @throws ValidationError `VALIDATION_FAILED` (400) whose one issue (path
 *   `sql`) names what was refused; a syntax error carries PostgreSQL's message
 *   and `position` (1-based character).
 *
 * @example
 * ```ts
 * await validateSqlQuery("SELECT * FROM orders WHERE note = 'a;b'") // { statement: 'select' }
 * await validateSqlQuery('SELECT 1; DROP TABLE orders')
 * // ValidationError, issues[0].message: 'only one statement is allowed, found 2 (SELECT, DROP)'
 * await validateSqlQuery('SELECT pg_catalog.PG_SLEEP(1)')
 * // ValidationError, issues[0].message: 'function pg_sleep is not allowed'
 * await validateSqlQuery('SELEC 1')
 * // ValidationError, issues[0]: { path: 'sql', message: 'syntax error at or near "SELEC" (at character 1)', position: 1 }
 * ```
 */
export async function validateSqlQuery(sql: string): Promise<{ statement: 'select' }> {
  await checkSelect(sql)
  return { statement: 'select' }
}
