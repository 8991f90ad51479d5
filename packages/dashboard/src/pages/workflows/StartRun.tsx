import { useState, type FormEvent } from 'react'
import { useRouter } from '@tanstack/react-router'
import { workflowsApi } from '../../api/workflows'
import { useAction } from '../../components/action'
import { ErrorAlert } from '../../components/ErrorAlert'
import { JsonPanel } from '../../components/Json'
import { useJsonInput } from '../../components/json-input'
import { JsonField } from '../../components/JsonField'
import { Button, Field, Input, Section } from '../../components/ui'

export function StartRun({ name, schema }: { name: string; schema: unknown }) {
  const router = useRouter()
  const input = useJsonInput('{}', { emptyAs: null })
  const [workflowId, setWorkflowId] = useState('')
  const start = useAction((v: unknown) => workflowsApi.start(name, v, workflowId.trim() || undefined), {
    invalidate: [['workflows', name]],
    onSuccess: (r) => void router.navigate({ to: '/workflows/runs/$id', params: { id: r.workflowId } }),
  })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    start.reset()
    if (input.check() && input.parsed.ok) start.mutate(input.parsed.value)
  }
  return (
    <Section title={`Start a run of ${name}`} testId="wf-start">
      <form onSubmit={submit} className="grid gap-4 lg:grid-cols-2">
        <div className="space-y-3">
          <JsonField label="Input (JSON)" rows={8} input={input} testId="wf-start-input" />
          <Field label="Workflow id (optional)" hint="The same id and input again answer the existing run.">
            <Input value={workflowId} onChange={(e) => setWorkflowId(e.target.value)} data-testid="wf-start-id" />
          </Field>
          <ErrorAlert error={start.error} testId="wf-start-error" />
          <Button type="submit" variant="primary" disabled={start.isPending} data-testid="wf-start-submit">
            Start run
          </Button>
        </div>
        {schema !== null && schema !== undefined && (
          <JsonPanel title="Input schema" value={schema} />
        )}
      </form>
    </Section>
  )
}
