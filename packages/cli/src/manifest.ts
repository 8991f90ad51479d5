import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError, getManifest, OnePipeError, type Manifest } from '@onepipe/core'

/**
 * Imports an app entry file with `ONEPIPE_MANIFEST_ONLY=1`, so `serve()`
 * records the app and returns without opening a port, engines stay detached
 * and nothing connects; every `build()` the entry runs is recorded.
 *
 * @throws ConfigError `ENTRY_NOT_FOUND` when the file is missing, `ENTRY_FAILED` when importing it
 *   throws something other than a OnePipeError (which is rethrown as is)
 *
 * @example
 * ```ts
 * await loadEntry('examples/shop/dist/main.js')
 * console.log(builtDatabases().map((db) => db.name)) // ['shop']
 * ```
 */
export async function loadEntry(entry: string): Promise<void> {
  const file = resolve(entry)
  if (!existsSync(file) || statSync(file).isDirectory()) throw new ConfigError('ENTRY_NOT_FOUND', `No app entry file at ${file}; pass the compiled entry file, e.g. dist/main.js (build the app first)`)
  if (/\.(ts|mts|cts|tsx)$/.test(file)) throw new ConfigError('ENTRY_IS_TYPESCRIPT', `${file} is TypeScript, which Node 20 cannot load: build the app (npm run build) and pass the compiled file, e.g. dist/main.js`)
  process.env.ONEPIPE_MANIFEST_ONLY = '1'
  try {
    await import(pathToFileURL(file).href)
  } catch (e) {
    // The app's own errors (a bad DATABASE_URL…) keep their code; anything else gets one.
    if (e instanceof OnePipeError) throw e
    throw new ConfigError('ENTRY_FAILED', `Loading ${file} failed: ${e instanceof Error ? e.message : String(e)}`)
  }
}

/**
 * Loads an app entry without starting it (see {@link loadEntry}) and
 * returns the manifest its `build()`s and `serve()` recorded.
 *
 * @example
 * ```ts
 * const m = await readManifest('examples/shop/dist/main.js')
 * ```
 */
export async function readManifest(entry: string): Promise<Manifest> {
  await loadEntry(entry)
  return getManifest()
}
