// Types of suite.mjs, which stays plain JavaScript so the CLI runs without a build.

export interface ConformanceOptions {
  /** The worker API's base URL (its own port, or the app's /__onepipe/workers-api). */
  baseUrl: string
  /** An API key of the application the suite works as. */
  apiKey: string
  /** An API key of another application, to check that applications do not see each other. */
  otherApiKey: string
  /** Called with one line per case: `ok <name>` or `FAIL <name>: <reason>`. */
  log?: (line: string) => void
  /** Runs only the cases whose name contains this text. */
  only?: string
  /** Cases run at once (each on its own handler names); 4 unless given. */
  concurrency?: number
  /** A case still running after this long fails; 180 000 unless given. */
  caseTimeoutMs?: number
}

export interface ConformanceResult {
  /** How many cases passed. */
  passed: number
  failed: { name: string; error: string }[]
}

export function runConformance(options: ConformanceOptions): Promise<ConformanceResult>

/** The names of every case, in the order they start. */
export const caseNames: string[]
