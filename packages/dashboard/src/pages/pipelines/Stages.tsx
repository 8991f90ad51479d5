import { useQuery } from '@tanstack/react-query'
import { pipelineKeys, pipelinesApi } from '../../api/pipelines'
import type { Stage } from '../../api/types'
import { errorText, JsonPanel } from '../../components/Json'
import { StatusBadge } from '../../components/Status'
import { Table, Td, TdTime } from '../../components/Table'
import { StageActions } from './StageActions'

/** Workers' names by id, from the workers list (the stages carry only the id, unless the app sends the name too). */
function useWorkerNames(): Map<string, string> {
  const q = useQuery({ queryKey: pipelineKeys.workers, queryFn: pipelinesApi.workers })
  return new Map((q.data?.workers ?? []).map((w) => [w.workerId, w.name]))
}

/** A worker by name, its id shortened under it; an id alone (a worker gone from the list) in full. */
function WorkerCell({ id, name }: { id: string | null; name: string | null | undefined }) {
  if (!id) return <Td>—</Td>
  return (
    <Td className="text-xs">
      {name ? (
        <>
          <div className="font-medium">{name}</div>
          <div className="font-mono text-gray-600" title={id}>
            {id.slice(0, 8)}…
          </div>
        </>
      ) : (
        <span className="font-mono break-all">{id}</span>
      )}
    </Td>
  )
}

export function StageTable({ stages, pipelineId, actions }: { stages: Stage[]; pipelineId: string; actions: boolean }) {
  const workers = useWorkerNames()
  return (
    <Table columns={['Stage', 'Handler', 'Status', 'Attempt', 'Worker', 'Started', 'Finished', 'Error', ...(actions ? [''] : [])]} empty="No stages." caption="Stages" testId="stages-table">
      {stages.map((s) => (
        <tr key={s.id} data-testid="stage-row" data-stage={s.name} data-status={s.status}>
          <Td className="font-medium">{s.name}</Td>
          <Td className="font-mono text-xs">{s.handler}</Td>
          <Td>
            <StatusBadge status={s.status} testId="stage-status" />
          </Td>
          <Td>{s.attempt}</Td>
          <WorkerCell id={s.workerId} name={s.workerName ?? (s.workerId ? workers.get(s.workerId) : undefined)} />
          <TdTime at={s.startedAt} />
          <TdTime at={s.finishedAt} />
          <Td className="max-w-xs text-xs break-words text-red-900" >
            <span data-testid="stage-error">{errorText(s.error)}</span>
          </Td>
          {actions && (
            <Td>
              <StageActions stage={s} pipelineId={pipelineId} />
            </Td>
          )}
        </tr>
      ))}
    </Table>
  )
}

/** Each stage's output, error, approval and attempts, folded. */
export function StageDetails({ stages }: { stages: Stage[] }) {
  const workers = useWorkerNames()
  return (
    <div className="space-y-2">
      {stages.map((s) => (
        <details key={s.id} className="rounded border border-gray-300 p-2" data-testid="stage-details" data-stage={s.name}>
          <summary className="cursor-pointer text-sm font-medium">
            {s.name} <StatusBadge status={s.status} />
          </summary>
          <div className="mt-2 grid gap-3 lg:grid-cols-2">
            <JsonPanel title="Output" value={s.output} testId="stage-output" />
            <JsonPanel title="Error" value={s.error} />
            {s.approval !== null && s.approval !== undefined && (
              <JsonPanel title="Approval" value={s.approval} />
            )}
          </div>
          <h3 className="mt-3 mb-1 text-sm font-semibold">Attempts</h3>
          <Table columns={['#', 'Execution', 'Worker', 'Started', 'Ended', 'Outcome', 'Error']} empty="No attempts yet." caption={`Attempts of ${s.name}`}>
            {(s.attempts ?? []).map((a) => (
              <tr key={a.executionId} data-testid="stage-attempt" data-outcome={a.outcome ?? ''}>
                <Td>{a.attempt}</Td>
                <Td className="font-mono text-xs break-all">{a.executionId}</Td>
                <WorkerCell id={a.workerId} name={a.workerName ?? (a.workerId ? workers.get(a.workerId) : undefined)} />
                <TdTime at={a.startedAt} />
                <TdTime at={a.endedAt} />
                <Td>{a.outcome ?? '—'}</Td>
                <Td className="text-xs text-red-900">{errorText(a.error)}</Td>
              </tr>
            ))}
          </Table>
        </details>
      ))}
    </div>
  )
}
