import { createHash } from 'node:crypto'
import { setTimeout } from 'node:timers/promises'
import { TerminalError } from '@onepipe/worker'
import { FIXTURE_KINDS, type BlueprintMime, type Fixture } from '../contracts.js'
import type { AiProvider } from './provider.js'

const ROOMS = ['Bath 1', 'Bath 2', 'Kitchen', 'Laundry', 'Garage', 'Utility', 'Powder room', 'Exterior']
/** Files this short hold a signature and hardly more: no drawing to read. */
export const MIN_BLUEPRINT_BYTES = 16

/**
 * A provider without a model: the fixtures are derived from the SHA-256 of
 * the bytes, so the same file always gives the same fixtures (tests and
 * demos need no network and no key). It refuses, for good, a file too
 * short to hold a drawing. `delayMs` makes it take as long as a model would
 * (`LOCAL_PROVIDER_DELAY_MS`), to watch a blueprint go through `analyzing`.
 *
 * @example
 * ```ts
 * const fixtures = await new LocalProvider({ delayMs: 2000 }).analyzeBlueprint(bytes, 'image/png')
 * ```
 */
export class LocalProvider implements AiProvider {
  readonly name = 'local'
  readonly #delayMs: number

  constructor(o: { delayMs?: number } = {}) {
    this.#delayMs = o.delayMs ?? 0
  }

  async analyzeBlueprint(bytes: Uint8Array, _mime: BlueprintMime, o: { signal?: AbortSignal } = {}): Promise<Fixture[]> {
    if (this.#delayMs > 0) await setTimeout(this.#delayMs, undefined, o.signal ? { signal: o.signal } : {})
    if (bytes.byteLength < MIN_BLUEPRINT_BYTES) throw new TerminalError('BLUEPRINT_UNREADABLE', `The file has ${bytes.byteLength} bytes: too short to hold a drawing`)
    return localFixtures(bytes)
  }
}

/**
 * The fixtures {@link LocalProvider} answers for `bytes`: 2 to 5 distinct
 * kinds, each with a quantity of 1 to 6, a room and a confidence, all read
 * from the bytes' SHA-256.
 *
 * @example
 * ```ts
 * localFixtures(bytes) // [{ kind: 'sink', quantity: 3, room: 'Kitchen', confidencePct: 81 }, …]
 * ```
 */
export function localFixtures(bytes: Uint8Array): Fixture[] {
  const h = createHash('sha256').update(bytes).digest()
  const at = (i: number) => h[i % h.length] ?? 0
  const count = 2 + (at(0) % 4)
  const kinds: (typeof FIXTURE_KINDS)[number][] = []
  for (let i = 1; kinds.length < count && i < h.length; i++) {
    const kind = FIXTURE_KINDS[at(i) % FIXTURE_KINDS.length]
    if (kind !== undefined && !kinds.includes(kind)) kinds.push(kind)
  }
  // 31 bytes nearly always name enough kinds; when they do not, the catalogue fills in, in its order.
  for (const kind of FIXTURE_KINDS) if (kinds.length < count && !kinds.includes(kind)) kinds.push(kind)
  return kinds.map((kind, i) => ({
    kind,
    quantity: 1 + (at(8 + i) % 6),
    room: ROOMS[at(16 + i) % ROOMS.length] ?? null,
    confidencePct: 60 + (at(24 + i) % 40),
  }))
}
