// The analysis reads a blueprint and answers the fixtures on it. Which model
// does the reading is behind this interface: the worker picks one at start,
// tests always get the deterministic local one.
import { ConfigError } from '@onepipe/worker'
import type { BlueprintMime, Fixture } from '../contracts.js'
import { AnthropicProvider } from './anthropic.js'
import { LocalProvider } from './local.js'

/** Something that finds fixtures on a blueprint. */
export interface AiProvider {
  /** A short name stored with the result (`local`, `anthropic:<model>`). */
  readonly name: string
  /**
   * The fixtures on the blueprint `bytes` of type `mime`. Throws a
   * `TerminalError` when the file can never be analysed (retrying would not
   * help), any other error when it might work next time.
   */
  analyzeBlueprint(bytes: Uint8Array, mime: BlueprintMime, o?: { signal?: AbortSignal }): Promise<Fixture[]>
}

/**
 * The provider the environment asks for: Anthropic's API when
 * `ANTHROPIC_API_KEY` is set (model `ANTHROPIC_MODEL`), else the local,
 * deterministic one (taking `LOCAL_PROVIDER_DELAY_MS` per blueprint).
 *
 * @throws ConfigError `LOCAL_PROVIDER_DELAY_INVALID` for a delay that is not a whole number of milliseconds
 *
 * @example
 * ```ts
 * const provider = providerFromEnv(process.env)
 * ```
 */
export function providerFromEnv(env: Record<string, string | undefined>): AiProvider {
  const key = env.ANTHROPIC_API_KEY
  if (key) return new AnthropicProvider({ apiKey: key, ...(env.ANTHROPIC_MODEL ? { model: env.ANTHROPIC_MODEL } : {}) })
  const delay = env.LOCAL_PROVIDER_DELAY_MS
  if (delay === undefined || delay === '') return new LocalProvider()
  const delayMs = Number(delay)
  if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > 3_600_000) throw new ConfigError('LOCAL_PROVIDER_DELAY_INVALID', `LOCAL_PROVIDER_DELAY_MS must be a whole number of milliseconds up to an hour, not "${delay}"`)
  return new LocalProvider({ delayMs })
}
