import { useQuery } from '@tanstack/react-query'
import { useState, type FormEvent } from 'react'
import { flowsApi } from '../../api/ops'
import { CatalogPage } from '../../components/CatalogPage'
import { Loaded } from '../../components/Loaded'
import { Button, Field, Input, Section } from '../../components/ui'
import { EventTable, LiveTail } from './FlowEvents'

function FlowEvents({ name }: { name: string }) {
  const [offsetText, setOffsetText] = useState('0')
  const [limitText, setLimitText] = useState('50')
  const [read, setRead] = useState({ offset: 0, limit: 50 })
  const [live, setLive] = useState(false)
  const q = useQuery({ queryKey: ['flows', name, 'events', read], queryFn: () => flowsApi.events(name, read.offset, read.limit) })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    const want = { offset: Math.max(0, Number(offsetText) || 0), limit: Math.min(1000, Math.max(1, Number(limitText) || 50)) }
    // The same offset again is a new look: events may have been appended since.
    if (want.offset === read.offset && want.limit === read.limit) void q.refetch()
    else setRead(want)
  }
  const next = () => {
    if (!q.data) return
    setOffsetText(String(q.data.nextOffset))
    setRead({ ...read, offset: q.data.nextOffset })
  }
  return (
    <>
      <label className="mb-4 flex items-center gap-2 text-sm font-medium">
        <input type="checkbox" className="h-4 w-4" checked={live} onChange={(e) => setLive(e.target.checked)} data-testid="flow-live-toggle" />
        Live tail
      </label>
      {live && <LiveTail name={name} />}
      <Section title="Read from an offset">
        <form onSubmit={submit} className="mb-3 flex flex-wrap items-end gap-3" aria-label="Read events">
          <Field label="After offset">
            <Input type="number" min={0} value={offsetText} onChange={(e) => setOffsetText(e.target.value)} data-testid="flow-offset" />
          </Field>
          <Field label="Limit">
            <Input type="number" min={1} max={1000} value={limitText} onChange={(e) => setLimitText(e.target.value)} data-testid="flow-limit" />
          </Field>
          <Button type="submit" variant="primary" data-testid="flow-read">
            Read
          </Button>
          <Button onClick={next} disabled={!q.data || q.data.events.length === 0} data-testid="flow-next">
            Next page
          </Button>
        </form>
        <Loaded query={q}>
          <EventTable events={q.data?.events ?? []} rowTestId="flow-event-row" caption={`Events of ${name}`} />
        </Loaded>
      </Section>
    </>
  )
}

export function Flows({ name, onName }: { name: string | undefined; onName: (n: string) => void }) {
  return (
    <CatalogPage title="Flows" kind="flows" label="Flow" chosen={name} onName={onName} testId="flow-select">
      {(n) => <FlowEvents key={n} name={n} />}
    </CatalogPage>
  )
}
