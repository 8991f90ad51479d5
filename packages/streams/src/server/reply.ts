import { OnePipeError } from '@onepipe/core'
import { ProducerFencedError, ProducerSequenceError, StreamClosedError } from '../stores/types.js'
import { BASE_HEADERS, H } from './headers.js'
import type { SseSession } from './live.js'
import type { ContentCoding } from './compress.js'

type Headers_ = Record<string, string>

/** A transport-neutral answer: written straight to Node's ServerResponse, or turned into a Response for Hono. */
export interface Reply {
  status: number
  headers: Headers_
  body: string | Uint8Array | SseSession
  /** Compress `body` with this coding on the way out (the handler already set Content-Encoding). */
  encoding?: ContentCoding
}

export function respond(status: number, headers: Headers_, body: Reply['body'] = ''): Reply {
  return { status, headers: { ...BASE_HEADERS, ...headers }, body }
}

/** Maps any thrown value to the protocol's status + JSON error body. */
export function errorReply(err: unknown): Reply {
  if (!(err instanceof OnePipeError)) {
    const e = new OnePipeError('STREAM_INTERNAL', 'The streams server failed; see its log.', { status: 500 })
    return respond(500, { 'content-type': 'application/json' }, JSON.stringify(e.toJSON()))
  }
  const h: Headers_ = { 'content-type': 'application/json' }
  if (err instanceof StreamClosedError) {
    h[H.closed] = 'true'
    h[H.nextOffset] = err.nextOffset
  } else if (err instanceof ProducerFencedError) {
    h[H.producerEpoch] = String(err.currentEpoch)
  } else if (err instanceof ProducerSequenceError) {
    h[H.producerExpectedSeq] = String(err.expectedSeq)
    h[H.producerReceivedSeq] = String(err.receivedSeq)
  }
  return respond(err.status, h, JSON.stringify(err.toJSON()))
}

