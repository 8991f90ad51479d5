import { useQuery } from '@tanstack/react-query'
import { useState } from 'react'
import { pipelineKeys, pipelinesApi } from '../../api/pipelines'
import { useRights } from '../../api/session'
import type { Worker } from '../../api/types'
import { useAction } from '../../components/action'
import { ConfirmButton } from '../../components/ConfirmButton'
import { ErrorAlert } from '../../components/ErrorAlert'
import { Loaded } from '../../components/Loaded'
import { brief } from '../../components/Json'
import { StatusBadge } from '../../components/Status'
import { Table, Td, TdTime } from '../../components/Table'
import { ago } from '../../components/Time'
import { Button, PageTitle, Section } from '../../components/ui'

function WorkerEvents({ worker }: { worker: Worker }) {
  const q = useQuery({ queryKey: ['pipelines', 'workers', worker.workerId, 'events'], queryFn: () => pipelinesApi.workerEvents(worker.workerId) })
  return (
    <Section title={`Events of ${worker.name}`} testId="worker-events">
      <Loaded query={q}>
        <Table columns={['Time', 'Kind', 'Data']} empty="No events." caption={`Events of ${worker.name}`}>
          {(q.data?.events ?? []).map((e) => (
            <tr key={e.id} data-testid="worker-event" data-kind={e.kind}>
              <TdTime at={e.at} />
              <Td className="font-mono text-xs">{e.kind}</Td>
              <Td className="font-mono text-xs break-all">{brief(e.data, 300)}</Td>
            </tr>
          ))}
        </Table>
      </Loaded>
    </Section>
  )
}

export function Workers() {
  const { act } = useRights()
  const q = useQuery({ queryKey: pipelineKeys.workers, queryFn: pipelinesApi.workers, refetchInterval: 10_000 })
  const [shown, setShown] = useState<string | undefined>()
  const drain = useAction((id: string) => pipelinesApi.drain(id), { invalidate: [pipelineKeys.workers] })
  const workers = q.data?.workers ?? []
  const selected = workers.find((w) => w.workerId === shown)
  return (
    <>
      <PageTitle>Workers</PageTitle>
      <ErrorAlert error={drain.error} testId="drain-error" />
      <Loaded query={q}>
        <Table columns={['Name', 'Application', 'Status', 'Heartbeat', 'In flight', 'Handlers', '']} empty="No workers." caption="Workers" testId="workers-table">
          {workers.map((w) => (
            <tr key={w.workerId} data-testid="worker-row" data-id={w.workerId} data-status={w.status} data-drain={String(w.drain)}>
              <Td>
                <span className="font-medium">{w.name}</span>
                <div className="font-mono text-xs break-all text-gray-600">{w.workerId}</div>
              </Td>
              <Td className="font-mono text-xs break-all">{w.appId}</Td>
              <Td>
                <StatusBadge status={w.drain && w.status === 'active' ? 'draining' : w.status} />
              </Td>
              <Td>
                <span title={w.heartbeatAt ?? ''}>{ago(w.heartbeatAt)}</span>
              </Td>
              <Td>
                {w.inFlight} / {w.concurrency}
              </Td>
              <Td className="font-mono text-xs">{w.handlers.join(', ')}</Td>
              <Td>
                <div className="flex flex-wrap gap-1">
                  <Button onClick={() => setShown(shown === w.workerId ? undefined : w.workerId)} aria-pressed={shown === w.workerId} data-testid="worker-events-toggle">
                    Events
                  </Button>
                  {act && w.status === 'active' && !w.drain && (
                    <ConfirmButton question={`Drain ${w.name}?`} yes="Yes, drain" onConfirm={() => drain.mutate(w.workerId)} disabled={drain.isPending} testId="worker-drain">
                      Drain
                    </ConfirmButton>
                  )}
                </div>
              </Td>
            </tr>
          ))}
        </Table>
      </Loaded>
      {selected && (
        <div className="mt-6">
          <WorkerEvents worker={selected} />
        </div>
      )}
    </>
  )
}
