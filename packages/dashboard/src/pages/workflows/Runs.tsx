import { useQuery } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import { useState, type FormEvent } from 'react'
import { useRights } from '../../api/session'
import { RUN_STATUSES, workflowsApi } from '../../api/workflows'
import { CatalogPage } from '../../components/CatalogPage'
import { Loaded } from '../../components/Loaded'
import { errorText } from '../../components/Json'
import { parseJson } from '../../components/json-input'
import { StatusBadge } from '../../components/Status'
import { Table, Td, TdTime } from '../../components/Table'
import { Button, Choice, Field, Input, Section } from '../../components/ui'
import { StartRun } from './StartRun'

export interface RunFilters {
  name?: string | undefined
  status?: string | undefined
  input?: string | undefined
}

function Filters({ value, onChange }: { value: RunFilters; onChange: (f: RunFilters) => void }) {
  const [status, setStatus] = useState(value.status ?? '')
  const [input, setInput] = useState(value.input ?? '')
  const [error, setError] = useState<string>()
  const submit = (e: FormEvent) => {
    e.preventDefault()
    const p = input.trim() ? parseJson(input, { object: true }) : undefined
    setError(p && !p.ok ? p.error : undefined)
    if (!p || p.ok) onChange({ ...value, status: status || undefined, input: input.trim() || undefined })
  }
  return (
    <form onSubmit={submit} className="mb-4 grid grid-cols-1 items-start gap-3 sm:grid-cols-3" aria-label="Filter runs">
      <Choice label="Status" value={status} onChange={setStatus} options={[...RUN_STATUSES]} any="Any" testId="wf-filter-status" />
      <Field label="Input contains (JSON object)" error={error} errorTestId="wf-input-filter-error">
        <Input value={input} onChange={(e) => setInput(e.target.value)} placeholder='{"customer": "alice"}' data-testid="wf-input-filter" />
      </Field>
      <div className="sm:pt-6">
        <Button type="submit" variant="primary" data-testid="wf-filter-apply">
          Apply
        </Button>
      </div>
    </form>
  )
}

function Runs({ name, filters, onFilters, schema }: { name: string; filters: RunFilters; onFilters: (f: RunFilters) => void; schema: unknown }) {
  const { act } = useRights()
  const runs = useQuery({
    queryKey: ['workflows', name, 'runs', filters.status, filters.input],
    queryFn: () => workflowsApi.runs(name, { status: filters.status, input: filters.input }),
    refetchInterval: 5000,
  })
  return (
    <>
      <Filters key={`${name}|${filters.status}|${filters.input}`} value={{ ...filters, name }} onChange={onFilters} />
      <Section title="Runs">
        <Loaded query={runs}>
          <Table columns={['Run', 'Status', 'Error', 'Created', 'Updated', 'Completed']} empty="No runs match." caption="Runs" testId="wf-runs-table">
            {(runs.data?.runs ?? []).map((r) => (
              <tr key={r.workflowId} data-testid="wf-run-row" data-id={r.workflowId} data-status={r.status}>
                <Td>
                  <Link to="/workflows/runs/$id" params={{ id: r.workflowId }} className="font-mono text-xs break-all text-blue-800 underline" data-testid="wf-run-link">
                    {r.workflowId}
                  </Link>
                </Td>
                <Td>
                  <StatusBadge status={r.status} />
                </Td>
                <Td className="max-w-xs text-xs text-red-900">{errorText(r.error)}</Td>
                <TdTime at={r.createdAt} />
                <TdTime at={r.updatedAt} />
                <TdTime at={r.completedAt} />
              </tr>
            ))}
          </Table>
        </Loaded>
      </Section>
      {act && <StartRun name={name} schema={schema} />}
    </>
  )
}

export function WorkflowRuns({ filters, onFilters }: { filters: RunFilters; onFilters: (f: RunFilters) => void }) {
  return (
    <CatalogPage title="Workflows" kind="workflows" label="Workflow" chosen={filters.name} onName={(name) => onFilters({ name })} testId="wf-select">
      {(name, catalog) => <Runs key={name} name={name} filters={filters} onFilters={onFilters} schema={catalog.workflows.find((w) => w.name === name)?.inputSchema} />}
    </CatalogPage>
  )
}
