import type { Cache, Component, Database, Logger } from '@onepipe/core'
import type { Auth, AuthProvider, LifecycleManager, OpenApiInfo, RateLimit, RestApi } from '@onepipe/sdk'
import type { EmbeddedStreamsOptions } from './streams.js'

/**
 * Everything `serve()` runs. Each list takes built primitives; all of them
 * are Components (engines to attach, routes to mount).
 */
export interface ServeOptions {
  /** Port of the public HTTP app (default `PORT` or 3000; 0 picks a free one). */
  port?: number
  /** Interface to bind (default `HOST` or 0.0.0.0). */
  hostname?: string
  /** The app's default database; primitives without `.db()` use it (default: `Database.fromEnv()` on first use). */
  db?: Database
  /** The app's default cache (default: `Cache.fromEnv()`). */
  cache?: Cache
  rest?: RestApi[]
  channels?: Component[]
  flows?: Component[]
  signals?: Component[]
  projections?: Component[]
  workflows?: Component[]
  cron?: Component[]
  /**
   * Pipeline templates (`Pipeline.create(…).build()`) and/or a `ControlPlane`; templates alone get a
   * control plane whose worker API listens on `ONEPIPE_WORKERS_PORT` (default 8081).
   */
  pipelines?: Component[]
  /** Any other component to attach. */
  components?: Component[]
  lifecycle?: LifecycleManager
  /**
   * Who may call `/__onepipe/*` and `/rpc/*` (REST APIs declare their own with
   * `.auth()`). OnePipe's `Auth` also mounts `/__onepipe/auth/*` and checks
   * roles (`viewer` reads, `operator` acts); a plain provider function only
   * authenticates. Default: `Auth.create('onepipe')` on the app's database,
   * its secret from `ONEPIPE_AUTH_SECRET` / `ONEPIPE_AUTH_PRIVATE_KEY`
   * (required under `NODE_ENV=production`), whenever the app has such routes.
   */
  auth?: Auth | AuthProvider
  /**
   * Routes of `/__onepipe/*` and `/rpc/*` anyone may call, said in code:
   * `['GET /__onepipe/flows/orders/*', '/rpc/quote']`, or `true` for all of
   * them (then no Auth is made). Default none.
   */
  public?: true | string[]
  /** Info of the OpenAPI document at `/openapi.json`. */
  openapi?: OpenApiInfo
  /** Reported by `/version` (default: `ONEPIPE_VERSION` or 0.0.0). */
  version?: string
  logger?: Logger
  /** Log one line per request (default false: metrics count every request). */
  accessLog?: boolean
  /** Install SIGTERM/SIGINT handlers that shut down and exit (default true). */
  handleSignals?: boolean
  /**
   * The embedded streams server, started when a primitive keeps its data in
   * streams and `ONEPIPE_STREAMS_URL` is unset; `false` never starts it.
   */
  streams?: EmbeddedStreamsOptions | false
  /**
   * Budgets every request spends (except /health, /ready, /metrics,
   * /version): 429 with `Retry-After` over budget. Kept in the app's cache,
   * so in Redis (shared by every instance) when `REDIS_URL` is set.
   */
  rateLimit?: RateLimit | RateLimit[]
  /** Proxies whose `X-Forwarded-For` is believed (default `ONEPIPE_TRUSTED_PROXIES`, else none). */
  trustProxy?: string[]
  /** Origins browsers may call the app from (CORS; default `ALLOWED_ORIGINS`, else none). */
  allowedOrigins?: string[]
  /** Called once the port is open. */
  onListen?: (info: { url: string; port: number }) => void
  /**
   * The web console at `/__onepipe/dashboard/` (docs/dashboard.md); on by
   * default. `false` serves no files; the operators' API routes it uses stay.
   */
  dashboard?: boolean
  /**
   * The read-only SQL console at `POST /__onepipe/sql` (docs/sql-console.md),
   * for admins only (it reads every table); off by default.
   */
  sqlConsole?: boolean
}
