import { expect } from 'vitest'
import type { Hono } from 'hono'

export const SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz'
export const PASSWORD = 'correct horse battery staple'

/** A JSON request to an in-process app; `ip` becomes the client address the Auth sees. */
export async function call(app: Hono, method: string, path: string, o: { headers?: Record<string, string>; body?: unknown; ip?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = { ...(o.body === undefined ? {} : { 'content-type': 'application/json' }), ...(o.ip ? { 'x-test-ip': o.ip } : {}), ...o.headers }
  return app.request(path, { method, headers, ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }) })
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/** Asserts OnePipe's JSON error body with this status and code, and returns it. */
export async function refused(res: Response, status: number, code: string): Promise<{ error: { code: string; message: string; requestId: string } }> {
  const text = await res.text()
  expect({ status: res.status, text }).toMatchObject({ status })
  expect(res.headers.get('content-type')).toMatch(/^application\/json/)
  const body = JSON.parse(text) as { error: { code: string; message: string; requestId: string } }
  expect(body.error.code).toBe(code)
  expect(typeof body.error.message).toBe('string')
  expect(body.error.requestId).toBeTruthy()
  return body
}

/** The Set-Cookie values of a response, by cookie name. */
export function cookiesOf(res: Response): Record<string, { value: string; attrs: string }> {
  const out: Record<string, { value: string; attrs: string }> = {}
  for (const line of res.headers.getSetCookie()) {
    const [pair = '', ...attrs] = line.split('; ')
    const eq = pair.indexOf('=')
    out[pair.slice(0, eq)] = { value: pair.slice(eq + 1), attrs: attrs.join('; ') }
  }
  return out
}
