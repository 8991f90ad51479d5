export { REST, RESTBuilder, RestApi, type Handler, type RouteOptions } from './builder.js'
export { bearerProvider, fixedApiKeyProvider, toAuthProvider, type Authenticator, type AuthProvider, type AuthUser } from './auth.js'
export { type RestContext, type FormValue } from './context.js'
export { buildOpenApi, jsonSchema, type OpenApiInfo, type RouteDoc } from './openapi.js'
