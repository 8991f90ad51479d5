import type { Hono } from 'hono'
import type { Logger } from '@onepipe/core'
import { DEFAULT_MAX_BODY_BYTES, intParam, readJson, respondError } from '../http/index.js'
import type { ChannelCall } from './store.js'
import type { CallOptions } from './types.js'

/** What the routes use of their Channel (named structurally, so this file needs no import of channel.ts). */
interface RoutedChannel {
  readonly name: string
  call(input: unknown, options?: CallOptions): Promise<unknown>
  history(options?: { limit?: number }): Promise<ChannelCall[]>
}

/**
 * The channel's HTTP surface: `POST /rpc/{name}` with the input as JSON body
 * answers `200 { result }`, or the error's status with
 * `{ error: { code, message, details } }`; an `Idempotency-Key` header
 * overrides the key the channel computes. `GET /rpc/{name}?limit=` answers
 * `{ calls }`, the recent executed calls.
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
  app.get(path, async (c) => {
    try {
      const limit = intParam(c, 'limit')
      return c.json({ calls: await channel.history(limit === undefined ? {} : { limit }) })
    } catch (e) {
      return respondError(c, e, logger)
    }
  })
}
