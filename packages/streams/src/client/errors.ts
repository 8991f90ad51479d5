import { OnePipeError, TransportError } from '@onepipe/core'
import {
  InvalidOffsetError,
  PayloadTooLargeError,
  ProducerFencedError,
  ProducerSequenceError,
  StreamBadRequestError,
  StreamClosedError,
  StreamConflictError,
  StreamGoneError,
  StreamNotFoundError,
} from '../stores/types.js'

interface ErrorBody {
  error?: { code?: string; message?: string; details?: Record<string, unknown> }
}

/**
 * Rebuilds the server's typed error from a non-2xx response, so callers
 * catch the same classes in process and over HTTP.
 */
export async function errorFromResponse(name: string, res: Response): Promise<OnePipeError> {
  let body: ErrorBody = {}
  try {
    body = (await res.json()) as ErrorBody
  } catch {
    // Not every proxy answers with our JSON body; the status still decides.
  }
  const code = body.error?.code ?? `HTTP_${res.status}`
  const message = body.error?.message ?? `Streams server answered ${res.status} for "${name}".`
  const h = res.headers
  const detail = (key: string): string => {
    const v = body.error?.details?.[key]
    return typeof v === 'string' || typeof v === 'number' ? String(v) : ''
  }
  switch (res.status) {
    case 404:
      return new StreamNotFoundError(name)
    case 410:
      return new StreamGoneError(name)
    case 413:
      return new PayloadTooLargeError(Number(body.error?.details?.size ?? 0), Number(body.error?.details?.limit ?? 0))
    case 403:
      if (h.get('producer-epoch') !== null) return new ProducerFencedError(detail('producerId'), Number(h.get('producer-epoch')))
      break
    case 409:
      if (h.get('stream-closed') === 'true') return new StreamClosedError(name, h.get('stream-next-offset') ?? '')
      if (h.get('producer-expected-seq') !== null) {
        return new ProducerSequenceError(detail('producerId'), Number(h.get('producer-expected-seq')), Number(h.get('producer-received-seq')))
      }
      return new StreamConflictError(code, message, body.error?.details)
    case 400:
      if (code === 'STREAM_INVALID_OFFSET') return new InvalidOffsetError(detail('offset'))
      return new StreamBadRequestError(code, message, body.error?.details)
  }
  if (res.status >= 500) return new TransportError('STREAMS_SERVER_ERROR', message, { details: { status: res.status, code } })
  return new OnePipeError(code, message, { status: res.status, ...(body.error?.details ? { details: body.error.details } : {}) })
}

/** A network failure (refused, reset, DNS) as a retryable TransportError. */
export function unreachable(url: string, cause: unknown): TransportError {
  return new TransportError('STREAMS_UNREACHABLE', `Streams server at ${url} is unreachable; is it running?`, { cause })
}
