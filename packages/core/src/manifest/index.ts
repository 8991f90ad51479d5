/** The infrastructure a primitive needs from its environment. */
export type Infrastructure = 'none' | 'postgresql' | 'redis' | 'streams' | 'rabbitmq'

/** What one `build()` records about itself. */
export interface ManifestEntry {
  primitive: string
  name: string
  infrastructure: Infrastructure[]
  config: Record<string, unknown>
}

/** The whole app as seen by the CLI: every primitive built so far. */
export interface Manifest {
  version: 1
  primitives: ManifestEntry[]
}

// One registry per process even when two copies of this module are loaded
// (a linked workspace and an installed package), so the CLI sees everything.
const KEY = Symbol.for('onepipe.manifest')
type Holder = { [KEY]?: Map<string, ManifestEntry> }
function registry(): Map<string, ManifestEntry> {
  const g = globalThis as Holder
  g[KEY] ??= new Map()
  return g[KEY]
}

/**
 * Records a built primitive. A second build under the same primitive and
 * name replaces the first (hot reload, tests).
 *
 * @example
 * ```ts
 * registerPrimitive({ primitive: 'flow', name: 'orders', infrastructure: ['postgresql'], config: {} })
 * ```
 */
export function registerPrimitive(entry: ManifestEntry): void {
  registry().set(`${entry.primitive}:${entry.name}`, entry)
}

/**
 * Everything registered so far, in build order.
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(getManifest(), null, 2))
 * ```
 */
export function getManifest(): Manifest {
  return { version: 1, primitives: [...registry().values()] }
}

/**
 * Forgets every registration (for tests).
 *
 * @example
 * ```ts
 * beforeEach(() => clearManifest())
 * ```
 */
export function clearManifest(): void {
  registry().clear()
}
