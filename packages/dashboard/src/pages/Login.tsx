import { useMutation, useQueryClient } from '@tanstack/react-query'
import { useRouter } from '@tanstack/react-router'
import { useId, useState, type FormEvent } from 'react'
import { appApi } from '../api/app'
import { sessionKeys } from '../api/session'
import { ErrorAlert } from '../components/ErrorAlert'
import { useRequired } from '../components/required'
import { Button, Field, Input, useDocumentTitle } from '../components/ui'

export const BASE = '/__onepipe/dashboard'

/** Only a path of the console itself is followed after login, never another site. */
const safeRedirect = (r: string | undefined): string => (r && r.startsWith(`${BASE}/`) && !r.startsWith(`${BASE}/login`) ? r : `${BASE}/`)

const code = 'font-mono text-gray-900'

export function LoginPage({ redirect }: { redirect: string | undefined }) {
  useDocumentTitle('Log in')
  const email = useRequired('Enter your email address')
  const [password, setPassword] = useState('')
  const [passwordMissing, setPasswordMissing] = useState(false)
  const errorId = useId()
  const qc = useQueryClient()
  const router = useRouter()
  const login = useMutation({
    mutationFn: () => appApi.login(email.value.trim(), password),
    onSuccess: (r) => {
      qc.clear()
      qc.setQueryData(sessionKeys.me, { user: r.user })
      router.history.push(safeRedirect(redirect))
    },
  })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    // The last refusal goes with the last attempt, even one that stops here.
    login.reset()
    setPasswordMissing(password === '')
    if (email.check() && password !== '') login.mutate()
  }
  // A refused login is about both fields: each points at the message.
  const refused = login.error ? { 'aria-describedby': errorId, 'aria-invalid': true } : {}
  return (
    <main className="flex min-h-screen items-start justify-center bg-gray-50 px-4 pt-24">
      <div className="w-full max-w-sm rounded border border-gray-300 bg-white p-6 shadow-sm">
        <h1 className="mb-4 text-xl font-semibold text-gray-900">Log in to OnePipe</h1>
        <form onSubmit={submit} noValidate className="space-y-4" data-testid="login-form">
          <Field label="Email" error={email.error} errorTestId="login-email-error">
            <Input type="email" name="email" autoComplete="username" required value={email.value} onChange={(e) => email.set(e.target.value)} data-testid="login-email" {...refused} />
          </Field>
          <Field label="Password" error={passwordMissing && password === '' ? 'Enter your password' : undefined} errorTestId="login-password-error">
            <Input
              type="password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              data-testid="login-password"
              {...refused}
            />
          </Field>
          <ErrorAlert error={login.error} testId="login-error" id={errorId} />
          <Button type="submit" variant="primary" className="w-full justify-center" disabled={login.isPending} data-testid="login-submit">
            {login.isPending ? 'Logging in…' : 'Log in'}
          </Button>
        </form>
        <p className="mt-4 text-xs text-gray-700" data-testid="login-hint">
          First run on the embedded database? <code className={code}>npm start</code> printed where the development admin&apos;s password is (<code className={code}>dev-admin.txt</code>). Otherwise, use the{' '}
          <code className={code}>ONEPIPE_ADMIN_EMAIL</code> account.
        </p>
      </div>
    </main>
  )
}
