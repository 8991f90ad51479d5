import { OnePipeError, TerminalError, TransportError } from '@onepipe/worker'
import { z } from 'zod'
import { Fixture, FIXTURE_KINDS, MAX_FIXTURES, type BlueprintMime } from '../contracts.js'
import type { AiProvider } from './provider.js'

const API_URL = 'https://api.anthropic.com/v1/messages'
const API_VERSION = '2023-06-01'
/** The model asked when `ANTHROPIC_MODEL` is not set. */
export const DEFAULT_ANTHROPIC_MODEL = 'claude-sonnet-4-5'
// The API's own limits: images up to 5 MB each, a request up to 32 MB (base64 grows a file by a third).
const MAX_IMAGE_BYTES = 5 * 1024 * 1024
const MAX_PDF_BYTES = 24 * 1024 * 1024

const Answer = z.object({ fixtures: z.array(Fixture).max(MAX_FIXTURES) })

const PROMPT = `You read construction blueprints for a plumbing contractor.
List every plumbing fixture drawn on this blueprint, grouped by kind and room.
Answer with JSON only, no prose, in this shape:
{"fixtures":[{"kind":"toilet","quantity":2,"room":"Bath 1","confidencePct":90}]}
"kind" is one of: ${FIXTURE_KINDS.join(', ')}. "quantity" is a whole number from 1.
"room" is the room's label as drawn, or null. "confidencePct" is how sure you are, 0 to 100.
Leave out anything that is not one of those kinds. With no fixture at all, answer {"fixtures":[]}.`

/**
 * Anthropic's Messages API reading the blueprint (a PDF as a document, an
 * image as an image) and answering fixtures as JSON, validated before use.
 * Used only when `ANTHROPIC_API_KEY` is set; never in tests.
 *
 * @example
 * ```ts
 * const p = new AnthropicProvider({ apiKey: process.env.ANTHROPIC_API_KEY! })
 * const fixtures = await p.analyzeBlueprint(bytes, 'application/pdf')
 * ```
 */
export class AnthropicProvider implements AiProvider {
  readonly name: string
  readonly #apiKey: string
  readonly #model: string
  readonly #fetch: typeof fetch

  constructor(o: { apiKey: string; model?: string; fetch?: typeof fetch }) {
    this.#apiKey = o.apiKey
    this.#model = o.model ?? DEFAULT_ANTHROPIC_MODEL
    this.#fetch = o.fetch ?? fetch
    this.name = `anthropic:${this.#model}`
  }

  async analyzeBlueprint(bytes: Uint8Array, mime: BlueprintMime, o: { signal?: AbortSignal } = {}): Promise<z.infer<typeof Fixture>[]> {
    const limit = mime === 'application/pdf' ? MAX_PDF_BYTES : MAX_IMAGE_BYTES
    if (bytes.byteLength > limit) throw new TerminalError('BLUEPRINT_TOO_LARGE_FOR_PROVIDER', `${this.name} reads ${mime} files of up to ${limit} bytes; this one has ${bytes.byteLength}`)
    const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
    const file = mime === 'application/pdf' ? { type: 'document', source: { type: 'base64', media_type: mime, data } } : { type: 'image', source: { type: 'base64', media_type: mime, data } }
    let res: Response
    try {
      res = await this.#fetch(API_URL, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': this.#apiKey, 'anthropic-version': API_VERSION },
        body: JSON.stringify({ model: this.#model, max_tokens: 4096, messages: [{ role: 'user', content: [file, { type: 'text', text: PROMPT }] }] }),
        ...(o.signal ? { signal: o.signal } : {}),
      })
    } catch (e) {
      throw new TransportError('AI_UNREACHABLE', `${this.name} could not be reached: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
    }
    const text = await res.text()
    if (!res.ok) {
      // Overloaded, rate-limited or failing on its side: another attempt may pass. Anything else is this request's fault.
      const transient = res.status === 408 || res.status === 429 || res.status >= 500
      const message = `${this.name} answered ${res.status}: ${text.slice(0, 500)}`
      throw transient ? new TransportError('AI_UNAVAILABLE', message) : new TerminalError('AI_REFUSED', message)
    }
    return parseAnswer(text, this.name)
  }
}

/** The fixtures of a Messages API answer: its text blocks, read as the JSON the prompt asks for. */
function parseAnswer(body: string, name: string): z.infer<typeof Fixture>[] {
  let reply: unknown
  try {
    reply = JSON.parse(body)
  } catch {
    throw new OnePipeError('AI_BAD_ANSWER', `${name} answered something that is not JSON`, { status: 502, retryable: true })
  }
  const blocks = (reply as { content?: { type?: string; text?: string }[] }).content ?? []
  const text = blocks
    .filter((b) => b.type === 'text' && typeof b.text === 'string')
    .map((b) => b.text)
    .join('')
  const start = text.indexOf('{')
  const end = text.lastIndexOf('}')
  let json: unknown
  try {
    json = start >= 0 && end > start ? JSON.parse(text.slice(start, end + 1)) : undefined
  } catch {
    json = undefined
  }
  const parsed = Answer.safeParse(json)
  // A model may answer off-format once and right the next time: retryable, within the stage's attempts.
  if (!parsed.success) throw new OnePipeError('AI_BAD_ANSWER', `${name} did not answer the fixtures as asked: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ') || 'no JSON object'}`, { status: 502, retryable: true })
  return parsed.data.fixtures
}
