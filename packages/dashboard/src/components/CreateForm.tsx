import type { FormEvent, ReactNode } from 'react'
import { ErrorAlert } from './ErrorAlert'
import { Button } from './ui'

/**
 * The accounts pages' create forms: fields in a row, the submit button, then
 * the API's refusal in full. `noValidate` leaves the checks to the API, whose
 * error names the field.
 */
export function CreateForm({ testId, submit, pending, error, errorTestId, noValidate, onSubmit, children }: { testId: string; submit: string; pending: boolean; error: unknown; errorTestId?: string; noValidate?: boolean; onSubmit: () => void; children: ReactNode }) {
  const send = (e: FormEvent) => {
    e.preventDefault()
    onSubmit()
  }
  return (
    <>
      <form onSubmit={send} noValidate={noValidate} className="flex flex-wrap items-end gap-4" data-testid={`${testId}-form`}>
        {children}
        <Button type="submit" variant="primary" disabled={pending} data-testid={`${testId}-submit`}>
          {submit}
        </Button>
      </form>
      <ErrorAlert error={error} {...(errorTestId ? { testId: errorTestId } : {})} />
    </>
  )
}
