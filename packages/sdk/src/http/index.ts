// What every OnePipe route shares: the one error shape and path, request
// ids, bounded body reading, SSE. Primitives' routes import from here; this
// folder imports no primitive.
export { APIError, API_ERROR_STATUS, type APIErrorCode } from './api-error.js'
export { errorResponse, respondError, withErrors } from './errors.js'
export { requestIdOf } from './request-id.js'
export { requestInfo, type RequestInfo } from './request-info.js'
export { headerOf } from './headers.js'
export { parseSize, type Size } from './size.js'
export { readJson, readBodyText, intParam, DEFAULT_MAX_BODY_BYTES } from './body.js'
export { sseResponse, type SseMessage, type SseResponseOptions } from './sse.js'
export { compressedJson } from './compress.js'
export { requestView, fetchView, type RequestView } from './view.js'
