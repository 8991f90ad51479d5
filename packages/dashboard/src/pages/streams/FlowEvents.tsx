import { useState } from 'react'
import { useEventStream } from '../../api/events'
import { flowsApi } from '../../api/ops'
import type { FlowEvent } from '../../api/types'
import { Table, Td } from '../../components/Table'
import { EpochTime } from '../../components/Time'
import { Button, Section } from '../../components/ui'

/** When the event was appended, written like every other time of the console. */
const When = ({ e }: { e: FlowEvent }) => (typeof e.timestamp === 'number' ? <EpochTime ms={e.timestamp} /> : <span>—</span>)

export function EventTable({ events, rowTestId, caption }: { events: FlowEvent[]; rowTestId: string; caption: string }) {
  return (
    <Table columns={['Offset', 'Time', 'Data']} empty="No events." caption={caption}>
      {events.map((e) => (
        <tr key={e.offset} data-testid={rowTestId} data-offset={e.offset}>
          <Td className="font-mono">{e.offset}</Td>
          <Td className="text-xs">
            <When e={e} />
          </Td>
          <Td className="font-mono text-xs break-all">{JSON.stringify(e.data)}</Td>
        </tr>
      ))}
    </Table>
  )
}

const KEEP = 500

/** Events as they are appended, newest on top; the page keeps the last 500. */
export function LiveTail({ name }: { name: string }) {
  const [events, setEvents] = useState<FlowEvent[]>([])
  const state = useEventStream(flowsApi.streamUrl(name), {
    on: {
      message: (data) => {
        const e = data as FlowEvent
        setEvents((prev) => (prev.some((p) => p.offset === e.offset) ? prev : [e, ...prev].slice(0, KEEP)))
      },
    },
  })
  return (
    <Section title="Live tail" testId="flow-live" actions={<Button onClick={() => setEvents([])}>Clear</Button>}>
      <p className="mb-2 text-sm text-gray-700" data-testid="flow-live-state" data-state={state}>
        {state === 'live' ? 'Waiting for new events…' : 'Connecting…'}
      </p>
      {events.length > 0 && (
        <ul className="space-y-1" data-testid="flow-live-list">
          {events.map((e) => (
            <li key={e.offset} data-testid="flow-live-item" data-offset={e.offset} className="rounded border border-gray-200 p-2 font-mono text-xs break-all">
              <span className="font-semibold">#{e.offset}</span> <When e={e} /> {JSON.stringify(e.data)}
            </li>
          ))}
        </ul>
      )}
    </Section>
  )
}
