import { useState, type FormEvent } from 'react'
import type { PipelineFilters } from '../../api/pipelines'
import { Button, Choice, Field, Input } from '../../components/ui'

export const PIPELINE_STATUSES = ['Running', 'Completed', 'Failed', 'Cancelled']

// datetime-local speaks the reader's local time without a zone; the API wants ISO 8601 instants.
const toIso = (local: string): string | undefined => (local ? new Date(local).toISOString() : undefined)
const toLocal = (iso: string | undefined): string => {
  if (!iso) return ''
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return ''
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16)
}

export function PipelineFilterForm({ value, onChange }: { value: PipelineFilters; onChange: (f: PipelineFilters) => void }) {
  const [f, setF] = useState({ status: value.status ?? '', appId: value.appId ?? '', q: value.q ?? '', from: toLocal(value.from), to: toLocal(value.to) })
  const set = (k: keyof typeof f) => (e: { target: { value: string } }) => setF({ ...f, [k]: e.target.value })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    onChange({ status: f.status || undefined, appId: f.appId.trim() || undefined, q: f.q.trim() || undefined, from: toIso(f.from), to: toIso(f.to) })
  }
  const clear = () => {
    setF({ status: '', appId: '', q: '', from: '', to: '' })
    onChange({})
  }
  return (
    <form onSubmit={submit} className="mb-4 grid grid-cols-1 items-end gap-3 sm:grid-cols-3 lg:grid-cols-6" data-testid="pipeline-filters" aria-label="Filter pipelines">
      <Choice label="Status" value={f.status} onChange={(status) => setF({ ...f, status })} options={PIPELINE_STATUSES} any="Any" testId="filter-status" />
      <Field label="Application id">
        <Input value={f.appId} onChange={set('appId')} data-testid="filter-app" />
      </Field>
      <Field label="Name or keyword">
        <Input type="search" value={f.q} onChange={set('q')} data-testid="filter-q" />
      </Field>
      <Field label="Created from">
        <Input type="datetime-local" value={f.from} onChange={set('from')} data-testid="filter-from" />
      </Field>
      <Field label="Created to">
        <Input type="datetime-local" value={f.to} onChange={set('to')} data-testid="filter-to" />
      </Field>
      <div className="flex gap-2">
        <Button type="submit" variant="primary" data-testid="filter-apply">
          Apply
        </Button>
        <Button onClick={clear} data-testid="filter-clear">
          Clear
        </Button>
      </div>
    </form>
  )
}
