import { createContext, useContext } from 'react'
import { isApiError, isNetworkError } from '../api/http'

interface Issue {
  path?: string
  message?: string
}

const issuesOf = (details: unknown): Issue[] | undefined => {
  const issues = (details as { issues?: unknown } | null | undefined)?.issues
  return Array.isArray(issues) ? (issues as Issue[]) : undefined
}

/** True inside a page whose layout already says the app cannot be reached: its panels need not say it again. */
export const UnreachableShown = createContext(false)

/**
 * An API failure in full: code, message, the details' issues and the request
 * id to find it in the logs. A 403 says what was refused and the role it needs;
 * a 429 how long to wait.
 */
export function ErrorAlert({ error, testId = 'api-error', id }: { error: unknown; testId?: string; id?: string }) {
  const bannered = useContext(UnreachableShown)
  if (!error || (bannered && isNetworkError(error))) return null
  if (!isApiError(error)) {
    return (
      <div role="alert" id={id} data-testid={testId} className="my-3 rounded border border-red-700 bg-red-50 p-3 text-sm text-red-900">
        {error instanceof Error ? error.message : JSON.stringify(error)}
      </div>
    )
  }
  const forbidden = error.status === 403 && error.code !== 'CSRF_FAILED'
  const issues = issuesOf(error.details)
  // The wait is said in words; the details that carry it would only repeat it as JSON.
  const wait = error.status === 429 && error.retryAfter !== undefined ? error.retryAfter : undefined
  const details = wait === undefined && !issues && error.details !== undefined && error.details !== null
  return (
    <div
      role="alert"
      id={id}
      data-testid={testId}
      data-code={error.code}
      data-status={error.status}
      className="my-3 rounded border border-red-700 bg-red-50 p-3 text-sm text-red-900"
    >
      {forbidden && (
        <p className="mb-1 font-semibold" data-testid="forbidden">
          Not allowed: {error.method} {error.path} needs the <span data-testid="forbidden-role">{error.roleNeeded}</span> role.
        </p>
      )}
      {error.status === 0 ? (
        <p>
          Cannot reach the app (<span className="font-mono" data-testid="error-code">{error.code}</span>): <span data-testid="error-message">{error.message}</span>
        </p>
      ) : (
        <p>
          <span className="font-mono font-semibold" data-testid="error-code">
            {error.code}
          </span>
          <span> ({error.status})</span>: <span data-testid="error-message">{error.message}</span>
        </p>
      )}
      {wait !== undefined && !/try again/i.test(error.message) && <p data-testid="error-retry-after">Try again in {wait} s.</p>}
      {issues && issues.length > 0 && (
        <ul className="mt-2 list-disc pl-5" data-testid="error-issues">
          {issues.map((i, n) => (
            <li key={n}>
              <span className="font-mono">{i.path || '(root)'}</span>: {i.message}
            </li>
          ))}
        </ul>
      )}
      {details && (
        <pre className="mt-2 overflow-auto font-mono text-xs" tabIndex={0}>
          {JSON.stringify(error.details, null, 2)}
        </pre>
      )}
      {error.requestId && (
        <p className="mt-1 text-xs">
          Request id <span className="font-mono" data-testid="error-request-id">{error.requestId}</span>
        </p>
      )}
    </div>
  )
}
