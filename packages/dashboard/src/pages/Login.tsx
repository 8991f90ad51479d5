import { useMutation, useQueryClient } from '@tanstack/react-query'
import { useRouter } from '@tanstack/react-router'
import { useState, type FormEvent } from 'react'
import { appApi } from '../api/app'
import { sessionKeys } from '../api/session'
import { ErrorAlert } from '../components/ErrorAlert'
import { Button, Field, Input } from '../components/ui'

export const BASE = '/__onepipe/dashboard'

/** Only a path of the console itself is followed after login, never another site. */
const safeRedirect = (r: string | undefined): string => (r && r.startsWith(`${BASE}/`) && !r.startsWith(`${BASE}/login`) ? r : `${BASE}/`)

export function LoginPage({ redirect }: { redirect: string | undefined }) {
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const qc = useQueryClient()
  const router = useRouter()
  const login = useMutation({
    mutationFn: () => appApi.login(email, password),
    onSuccess: (r) => {
      qc.clear()
      qc.setQueryData(sessionKeys.me, { user: r.user })
      router.history.push(safeRedirect(redirect))
    },
  })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    login.mutate()
  }
  return (
    <main className="flex min-h-screen items-start justify-center bg-gray-50 px-4 pt-24">
      <div className="w-full max-w-sm rounded border border-gray-300 bg-white p-6 shadow-sm">
        <h1 className="mb-4 text-xl font-semibold text-gray-900">Log in to OnePipe</h1>
        <form onSubmit={submit} className="space-y-4" data-testid="login-form">
          <Field label="Email">
            <Input type="email" name="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} data-testid="login-email" />
          </Field>
          <Field label="Password">
            <Input
              type="password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              data-testid="login-password"
            />
          </Field>
          {login.error && <ErrorAlert error={login.error} testId="login-error" />}
          <Button type="submit" variant="primary" className="w-full justify-center" disabled={login.isPending} data-testid="login-submit">
            {login.isPending ? 'Logging in…' : 'Log in'}
          </Button>
        </form>
      </div>
    </main>
  )
}
