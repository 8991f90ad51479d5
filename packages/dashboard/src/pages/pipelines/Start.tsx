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
import { Button, Choice, Field, Input, Loading, PageTitle, Section } from '../../components/ui'

/** Application ids to pick from: the admin's list of applications, and those of running workers. */
function KnownApplications({ id }: { id: string }) {
  const { admin } = useRights()
  const apps = useQuery({ queryKey: accountKeys.applications, queryFn: accountsApi.applications, enabled: admin })
  const workers = useQuery({ queryKey: pipelineKeys.workers, queryFn: pipelinesApi.workers })
  const known = new Map<string, string>()
  for (const a of apps.data?.applications ?? []) known.set(a.id, a.name)
  for (const w of workers.data?.workers ?? []) if (!known.has(w.appId)) known.set(w.appId, `workers: ${w.name}`)
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
  const [chosen, setChosen] = useState('')
  const [appId, setAppId] = useState('')
  const [keywords, setKeywords] = useState('')
  const input = useJsonInput('{}', { emptyAs: null })
  const list = templates.data?.templates ?? []
  const name = chosen || list[0]?.name || ''
  const template = list.find((t) => t.name === name)
  const start = useAction(
    (v: { input: unknown }) =>
      pipelinesApi.start(name, {
        appId: appId.trim(),
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
    if (!input.check() || !input.parsed.ok) return
    start.mutate({ input: input.parsed.value })
  }
  return (
    <>
      <PageTitle>Start a pipeline</PageTitle>
      <ErrorAlert error={templates.error} />
      {templates.isPending && <Loading what="Loading templates" />}
      {templates.data && (
        <form onSubmit={submit} className="max-w-2xl space-y-4" data-testid="start-form">
          <Choice label="Template" value={name} onChange={setChosen} options={list.map((t) => t.name)} testId="start-template" />
          <Field label="Application id" hint="The application whose workers run it.">
            <Input value={appId} onChange={(e) => setAppId(e.target.value)} required list="start-app-ids" autoComplete="off" data-testid="start-app" />
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
