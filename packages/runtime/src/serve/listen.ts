import type { ServerResponse } from 'node:http'
import { serve as nodeServe, type ServerType } from '@hono/node-server'
import { ConfigError, TransportError, waitForPreviousMs } from '@onepipe/core'
import type { FetchHandler } from '../http/app.js'

/**
 * The port to listen on: `option`, else `PORT`, else 3000; 0 picks a free
 * one. Checked before anything starts, so a typo in `PORT` is one clear
 * error rather than a socket exception after the engines took their leases.
 *
 * @throws ConfigError `INVALID_PORT` for anything but a whole number from 0 to 65535
 *
 * @example
 * ```ts
 * portOf(undefined, process.env.PORT) // 3000 when PORT is unset
 * ```
 */
export function portOf(option: number | undefined, env: string | undefined): number {
  const raw = option ?? (env === undefined || env === '' ? 3000 : env)
  const n = typeof raw === 'number' ? raw : /^\d+$/.test(raw) ? Number(raw) : NaN
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new ConfigError('INVALID_PORT', `${option === undefined ? 'PORT' : 'serve({ port })'} is "${String(raw)}"; it must be a whole number from 0 to 65535 (0 picks a free port)`)
  }
  return n
}

/**
 * Opens the HTTP server on `port`, with `headers` on every response: a port
 * in use or not allowed is a clear error naming it.
 *
 * @throws ConfigError `PORT_IN_USE` or `PORT_NOT_ALLOWED`; TransportError `LISTEN_FAILED` otherwise
 */
export function listen(fetch: FetchHandler, port: number, hostname: string, headers: readonly [string, string][] = []): Promise<{ server: ServerType; port: number }> {
  // The previous run of the app may still hold the port while it stops (onepipe dev): wait for it, within the budget.
  const until = Date.now() + (port === 0 ? 0 : waitForPreviousMs())
  const attempt = (): Promise<{ server: ServerType; port: number }> =>
    new Promise((resolve, reject) => {
      const server = nodeServe({ fetch, port, hostname }, (info) => resolve({ server, port: info.port }))
      // Headers every response carries (security headers), set on Node's response before the app
      // answers: cheaper than changing each Fetch Response, and the app's own headers still win.
      if (headers.length > 0) {
        server.prependListener('request', (_req, res: ServerResponse) => {
          for (const [k, v] of headers) res.setHeader(k, v)
        })
      }
      server.once('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EADDRINUSE' && Date.now() < until) {
          server.close()
          setTimeout(() => attempt().then(resolve, reject), 50)
        } else if (e.code === 'EADDRINUSE') reject(new ConfigError('PORT_IN_USE', `Port ${port} on ${hostname} is in use by another process; stop it or set PORT to another port`))
        else if (e.code === 'EACCES') reject(new ConfigError('PORT_NOT_ALLOWED', `This process may not listen on port ${port}; use a port above 1023 or run with the right permissions`))
        else reject(new TransportError('LISTEN_FAILED', `Cannot listen on ${hostname}:${port}: ${e.message}`, { cause: e }))
      })
    })
  return attempt()
}
