import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { getManifest, type Manifest } from '@onepipe/core'

/**
 * Loads an app entry file with `ONEPIPE_MANIFEST_ONLY=1`, so `serve()` and
 * every `build()` register themselves without opening ports or connecting,
 * and returns the manifest they recorded.
 *
 * @example
 * ```ts
 * const m = await readManifest('examples/shop/dist/main.js')
 * ```
 */
export async function readManifest(entry: string): Promise<Manifest> {
  process.env.ONEPIPE_MANIFEST_ONLY = '1'
  await import(pathToFileURL(resolve(entry)).href)
  return getManifest()
}
