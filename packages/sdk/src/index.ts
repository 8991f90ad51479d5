// @onepipe/sdk: the primitives. Each concept lives in its own folder with a
// curated index; this file only re-exports them.
export * from '@onepipe/core'
export * from './http/index.js'
export * from './rest/index.js'
export * from './lifecycle/index.js'
export * from './flow/index.js'
export * from './projection/index.js'
export * from './signal/index.js'
export * from './workflow/index.js'
export * from './cron/index.js'
export * from './channel/index.js'
export * from './ratelimit/index.js'
export * from './auth/index.js'
