import type { App } from '@onepipe/runtime'

/** The shop's first admin in tests: set before serve(), which creates it (docs/auth.md). */
export const ADMIN = { email: 'admin@shop.test', password: 'a long test passphrase' }

/** Sets the first-admin variables for the serve() that follows; returns a function that unsets them. */
export function withAdminEnv(): () => void {
  process.env.ONEPIPE_ADMIN_EMAIL = ADMIN.email
  process.env.ONEPIPE_ADMIN_PASSWORD = ADMIN.password
  return () => {
    delete process.env.ONEPIPE_ADMIN_EMAIL
    delete process.env.ONEPIPE_ADMIN_PASSWORD
  }
}

/** Logs the admin in and answers the Authorization header to send. */
export async function adminHeaders(app: App): Promise<Record<string, string>> {
  const res = await fetch(`${app.url}/__onepipe/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ADMIN) })
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`)
  const { accessToken } = (await res.json()) as { accessToken: string }
  return { authorization: `Bearer ${accessToken}` }
}
