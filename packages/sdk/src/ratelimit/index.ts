export { RateLimit, RateLimitBuilder, rateLimitMiddleware, type RateLimitKey, type RateLimitOptions, type RateLimitState } from './limiter.js'
export { clientIp, trustProxies, type TrustProxy } from './client-ip.js'
