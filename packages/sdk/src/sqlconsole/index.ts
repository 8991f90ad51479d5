// The read-only SQL console for operators: one SELECT, checked by
// PostgreSQL's own parser, run read-only with a timeout and a row cap.
export { validateSqlQuery, SQL_CONSOLE_MAX_SQL_BYTES } from './validate.js'
export { runReadOnlyQuery, SQL_CONSOLE_MAX_ROWS, SQL_CONSOLE_MAX_TIMEOUT_MS, type SqlConsoleOptions, type SqlConsoleColumn, type SqlConsoleResult } from './run.js'
export { mountSqlConsoleRoutes, type SqlConsoleRoutesOptions } from './http.js'
