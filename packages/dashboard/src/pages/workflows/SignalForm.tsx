import type { FormEvent } from 'react'
import { workflowsApi } from '../../api/workflows'
import { useAction } from '../../components/action'
import { ErrorAlert } from '../../components/ErrorAlert'
import { useJsonInput } from '../../components/json-input'
import { JsonField } from '../../components/JsonField'
import { useRequired } from '../../components/required'
import { Button, Field, Input, Section } from '../../components/ui'

export function SignalForm({ runId, invalidate }: { runId: string; invalidate: readonly unknown[] }) {
  const name = useRequired('Enter the name of the signal')
  const data = useJsonInput('{}', { emptyAs: null })
  const send = useAction((v: { name: string; data: unknown }) => workflowsApi.signal(runId, v.name, v.data), { invalidate: [invalidate] })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    send.reset()
    const ok = [name.check(), data.check()].every(Boolean)
    if (ok && data.parsed.ok) send.mutate({ name: name.value.trim(), data: data.parsed.value })
  }
  return (
    <Section title="Send a signal" testId="wf-signal">
      <form onSubmit={submit} noValidate className="max-w-xl space-y-3" data-testid="wf-signal-form">
        <Field label="Signal name" error={name.error} errorTestId="wf-signal-name-error">
          <Input value={name.value} onChange={(e) => name.set(e.target.value)} required data-testid="wf-signal-name" />
        </Field>
        <JsonField label="Data (JSON)" rows={4} input={data} testId="wf-signal-data" />
        <ErrorAlert error={send.error} testId="wf-signal-error" />
        {send.isSuccess && (
          <p role="status" className="text-sm text-green-800" data-testid="wf-signal-sent">
            Signal “{send.variables.name}” sent.
          </p>
        )}
        <Button type="submit" variant="primary" disabled={send.isPending} data-testid="wf-signal-submit">
          Send signal
        </Button>
      </form>
    </Section>
  )
}
