import type { FormEvent, ReactNode } from 'react'
import { ErrorAlert } from './ErrorAlert'
import { Button } from './ui'

/**
 * The accounts pages' create forms: fields in a row, the submit button, then
 * the API's refusal in full. The browser's own checks are off: the page says
 * what is missing beside the field, and the API's error names the rest.
 */
export function CreateForm({ testId, submit, pending, error, errorTestId, onSubmit, children }: { testId: string; submit: string; pending: boolean; error: unknown; errorTestId?: string; onSubmit: () => void; children: ReactNode }) {
  const send = (e: FormEvent) => {
    e.preventDefault()
    onSubmit()
  }
  return (
    <>
      <form onSubmit={send} noValidate className="flex flex-wrap items-start gap-4" data-testid={`${testId}-form`}>
        {children}
        {/* Level with the inputs under their labels, whatever message a field shows below itself. */}
        <div className="pt-6">
          <Button type="submit" variant="primary" disabled={pending} data-testid={`${testId}-submit`}>
            {submit}
          </Button>
        </div>
      </form>
      <ErrorAlert error={error} {...(errorTestId ? { testId: errorTestId } : {})} />
    </>
  )
}
