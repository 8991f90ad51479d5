import type { Context, Hono } from 'hono'
import { ValidationError, type Logger } from '@onepipe/core'
import { DEFAULT_MAX_BODY_BYTES, intParam, readJson, respondError } from '../http/index.js'
import type { ChannelCall, IdempotencyEntry } from './store.js'
import type { CallOptions } from './types.js'

/** What the routes use of their Channel (named structurally, so this file needs no import of channel.ts). */
interface RoutedChannel {
  readonly name: string
  call(input: unknown, options?: CallOptions): Promise<unknown>
  history(options?: { limit?: number }): Promise<ChannelCall[]>
  idempotencyKeys(options?: { limit?: number }): Promise<IdempotencyEntry[]>
}

/**
 * The channel's HTTP surface: `POST /rpc/{name}` with the input as JSON body
 * answers `200 { result }`, or the error's status with
 * `{ error: { code, message, details } }`; an `Idempotency-Key` header
 * overrides the key the channel computes. `GET /rpc/{name}?limit=` answers
 * `{ calls }`, the recent executed calls. For operators (docs/dashboard.md,
 * behind the roles of `/__onepipe/*`): `GET /__onepipe/channels/{name}/calls?limit`
 * and `GET /__onepipe/channels/{name}/keys?limit` (live idempotency entries), limit 1–1000.
 */
export function mountChannelRoutes(app: Hono, channel: RoutedChannel, logger: Logger): void {
  const path = `/rpc/${channel.name}`
  app.post(path, async (c) => {
    try {
      const input = await readJson(c, { maxBytes: DEFAULT_MAX_BODY_BYTES })
      const key = c.req.header('idempotency-key')
      const result = await channel.call(input, key === undefined ? {} : { idempotencyKey: key })
      return c.json({ result: result ?? null })
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
  const calls = async (c: Context) => {
    try {
      return c.json({ calls: await channel.history({ limit: limitParam(c) }) })
    } catch (e) {
      return respondError(c, e, logger)
    }
  }
  app.get(path, calls)
  app.get(`/__onepipe/channels/${channel.name}/calls`, calls)
  app.get(`/__onepipe/channels/${channel.name}/keys`, async (c) => {
    try {
      return c.json({ keys: await channel.idempotencyKeys({ limit: limitParam(c) }) })
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
}

function limitParam(c: Context): number {
  const limit = intParam(c, 'limit') ?? 50
  if (limit < 1 || limit > 1000) throw new ValidationError('query', [{ path: 'limit', message: 'must be between 1 and 1000' }])
  return limit
}
