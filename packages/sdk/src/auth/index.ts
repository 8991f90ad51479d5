// Auth: accounts and sessions for people, API keys for applications, roles for both (docs/auth.md).
export { Auth, AuthBuilder } from './auth.js'
export type { AuthCaller, IssuedSession } from './types.js'
export { type Account, type Application, type ApiKeyInfo, type CreatedApiKey, Users, Applications, ApiKeys } from './accounts.js'
export { AuthError, AUTH_ERROR_STATUS, respondAuthError, type AuthErrorCode } from './errors.js'
export { can, hasRole, RoleMap, BUILTIN_ROLES, ONEPIPE_PERMISSIONS } from './roles.js'
export { PASSWORD_HASH, MIN_PASSWORD_LENGTH } from './passwords.js'
export { COOKIE } from './cookies.js'
export type { SigningAlgorithm } from './keys.js'
