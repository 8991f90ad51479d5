import { useQuery } from '@tanstack/react-query'
import { useRouter } from '@tanstack/react-router'
import { useState, type FormEvent } from 'react'
import { accountKeys, accountsApi } from '../../api/accounts'
import { pipelineKeys, pipelinesApi } from '../../api/pipelines'
import { useRights } from '../../api/session'
import { useAction } from '../../components/action'
import { ErrorAlert } from '../../components/ErrorAlert'
import { useJsonInput } from '../../components/json-input'
import { JsonField } from '../../components/JsonField'
import { useRequired } from '../../components/required'
import { Button, Choice, Field, Input, Loading, PageTitle, Section } from '../../components/ui'

/**
 * Application ids to pick from: every application with its name for an admin
 * (only admins may list them), and the ids of running workers' applications.
 */
function KnownApplications({ id }: { id: string }) {
  const { admin } = useRights()
  const apps = useQuery({ queryKey: accountKeys.applications, queryFn: accountsApi.applications, enabled: admin })
  const workers = useQuery({ queryKey: pipelineKeys.workers, queryFn: pipelinesApi.workers })
  const known = new Map<string, string>()
  for (const a of apps.data?.applications ?? []) known.set(a.id, a.name)
  for (const w of workers.data?.workers ?? []) if (!known.has(w.appId)) known.set(w.appId, '')
  return (
    <datalist id={id}>
      {[...known].map(([appId, name]) => (
        <option key={appId} value={appId}>
          {name}
        </option>
      ))}
    </datalist>
  )
}

export function StartPipeline() {
  const router = useRouter()
  const templates = useQuery({ queryKey: pipelineKeys.templates, queryFn: pipelinesApi.templates })
  const { admin } = useRights()
  const [chosen, setChosen] = useState('')
  const appId = useRequired('Enter the id of an application')
  const [keywords, setKeywords] = useState('')
  const input = useJsonInput('{}', { emptyAs: null })
  const list = templates.data?.templates ?? []
  const name = chosen || list[0]?.name || ''
  const template = list.find((t) => t.name === name)
  const start = useAction(
    (v: { input: unknown }) =>
      pipelinesApi.start(name, {
        appId: appId.value.trim(),
        ...(v.input === null ? {} : { input: v.input }),
        ...(keywords.trim() ? { keywords: keywords.split(',').map((k) => k.trim()).filter(Boolean) } : {}),
      }),
    {
      invalidate: [pipelineKeys.lists],
      onSuccess: (p) => void router.navigate({ to: '/pipelines/$id', params: { id: p.id } }),
    },
  )
  const submit = (e: FormEvent) => {
    e.preventDefault()
    // A new attempt: the last one's refusal would otherwise stay beside this one's own problem.
    start.reset()
    const ok = [appId.check(), input.check()].every(Boolean)
    if (ok && input.parsed.ok) start.mutate({ input: input.parsed.value })
  }
  return (
    <>
      <PageTitle>Start a pipeline</PageTitle>
      <ErrorAlert error={templates.error} />
      {templates.isPending && <Loading what="Loading templates" />}
      {templates.data && (
        <form onSubmit={submit} noValidate className="max-w-2xl space-y-4" data-testid="start-form">
          <Choice label="Template" value={name} onChange={setChosen} options={list.map((t) => t.name)} testId="start-template" />
          <Field
            label="Application id"
            hint={`The application whose workers run the stages. The list offers the ids of ${admin ? 'the applications, with their names' : 'the applications that have workers running'}; any other id can be typed.`}
            error={appId.error}
            errorTestId="start-app-error"
          >
            <Input value={appId.value} onChange={(e) => appId.set(e.target.value)} required list="start-app-ids" autoComplete="off" data-testid="start-app" />
          </Field>
          <KnownApplications id="start-app-ids" />
          <JsonField label="Input (JSON)" hint="Empty for no input." rows={8} input={input} testId="start-input" />
          <Field label="Keywords" hint="Comma-separated, for finding the run later.">
            <Input value={keywords} onChange={(e) => setKeywords(e.target.value)} data-testid="start-keywords" />
          </Field>
          <ErrorAlert error={start.error} testId="start-error" />
          <Button type="submit" variant="primary" disabled={start.isPending || !name} data-testid="start-submit">
            {start.isPending ? 'Starting…' : 'Start'}
          </Button>
        </form>
      )}
      {template && (
        <Section title="Template stages" testId="start-template-stages">
          <ul className="list-disc pl-5 text-sm">
            {template.stages.map((s) => (
              <li key={s.name}>
                <span className="font-medium">{s.name}</span> <span className="font-mono text-xs">{s.handler}</span>
                {s.dependsOn && s.dependsOn.length > 0 && <span className="text-gray-700"> after {s.dependsOn.join(', ')}</span>}
              </li>
            ))}
          </ul>
        </Section>
      )}
    </>
  )
}
