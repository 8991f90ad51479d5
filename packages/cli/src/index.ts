export { loadEntry, readManifest } from './manifest.js'
export { migrateDefault, migrateEntry, type DatabaseMigration, type MigrateDefaultOptions, type OnMigrated } from './migrate.js'
export { createProgram } from './program.js'
