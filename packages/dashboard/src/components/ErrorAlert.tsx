import { isApiError } from '../api/http'

interface Issue {
  path?: string
  message?: string
}

const issuesOf = (details: unknown): Issue[] | undefined => {
  const issues = (details as { issues?: unknown } | null | undefined)?.issues
  return Array.isArray(issues) ? (issues as Issue[]) : undefined
}

/**
 * An API failure in full: code, message, the details' issues and the request
 * id to find it in the logs. A 403 says what was refused and the role it needs.
 */
export function ErrorAlert({ error, testId = 'api-error' }: { error: unknown; testId?: string }) {
  if (!error) return null
  if (!isApiError(error)) {
    return (
      <div role="alert" data-testid={testId} className="my-3 rounded border border-red-700 bg-red-50 p-3 text-sm text-red-900">
        {error instanceof Error ? error.message : JSON.stringify(error)}
      </div>
    )
  }
  const forbidden = error.status === 403 && error.code !== 'CSRF_FAILED'
  const issues = issuesOf(error.details)
  return (
    <div
      role="alert"
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
      <p>
        <span className="font-mono font-semibold" data-testid="error-code">
          {error.code}
        </span>
        {error.status > 0 && <span> ({error.status})</span>}: <span data-testid="error-message">{error.message}</span>
      </p>
      {issues && issues.length > 0 && (
        <ul className="mt-2 list-disc pl-5" data-testid="error-issues">
          {issues.map((i, n) => (
            <li key={n}>
              <span className="font-mono">{i.path || '(root)'}</span>: {i.message}
            </li>
          ))}
        </ul>
      )}
      {!issues && error.details !== undefined && error.details !== null && (
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
