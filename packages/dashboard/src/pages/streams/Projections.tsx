import { useQuery } from '@tanstack/react-query'
import { useState } from 'react'
import { projectionsApi } from '../../api/ops'
import { useRights } from '../../api/session'
import { useAction } from '../../components/action'
import { ConfirmButton } from '../../components/ConfirmButton'
import { ErrorAlert } from '../../components/ErrorAlert'
import { Loaded } from '../../components/Loaded'
import { Json } from '../../components/Json'
import { StatusBadge } from '../../components/Status'
import { Table, Td } from '../../components/Table'
import { Button, Loading, PageTitle, Section } from '../../components/ui'

function ProjectionState({ name }: { name: string }) {
  const q = useQuery({ queryKey: ['projections', name, 'state'], queryFn: () => projectionsApi.state(name), refetchInterval: 5000 })
  return (
    <Section title={`State of ${name}`} testId="projection-state">
      <ErrorAlert error={q.error} />
      {q.isPending && <Loading />}
      {q.data && !q.data.keyed && <Json value={q.data.state} testId="projection-state-value" label={`State of ${name}`} />}
      {q.data?.keyed && (
        <Table columns={['Key', 'State']} empty="No keys yet." caption={`Keys of ${name}`}>
          {(q.data.entries ?? []).map(([k, v]) => (
            <tr key={k} data-testid="projection-entry" data-key={k}>
              <Td className="font-mono text-xs">{k}</Td>
              <Td className="font-mono text-xs break-all">{JSON.stringify(v)}</Td>
            </tr>
          ))}
        </Table>
      )}
    </Section>
  )
}

export function Projections() {
  const { act } = useRights()
  const q = useQuery({ queryKey: ['projections'], queryFn: projectionsApi.list, refetchInterval: 5000 })
  const [shown, setShown] = useState<string>()
  const rebuild = useAction((name: string) => projectionsApi.rebuild(name), { invalidate: [['projections']] })
  return (
    <>
      <PageTitle>Projections</PageTitle>
      <ErrorAlert error={rebuild.error} testId="projection-rebuild-error" />
      {rebuild.isSuccess && (
        <p role="status" className="mb-2 text-sm text-green-800" data-testid="projection-rebuild-started">
          Rebuild of {rebuild.variables} started.
        </p>
      )}
      <Loaded query={q}>
        <Table columns={['Projection', 'Flow', 'Position', 'Head', 'Lag', 'Running', '']} empty="No projections." caption="Projections" testId="projections-table">
          {(q.data?.projections ?? []).map((p) => (
            <tr key={p.name} data-testid="projection-row" data-name={p.name} data-lag={p.lag}>
              <Td className="font-medium">{p.name}</Td>
              <Td className="font-mono text-xs">{p.flow}</Td>
              <Td className="font-mono" >
                <span data-testid="projection-position">{p.position}</span>
              </Td>
              <Td className="font-mono">{p.head}</Td>
              <Td className="font-mono">
                <span data-testid="projection-lag">{p.lag}</span>
              </Td>
              <Td>
                {p.running === undefined ? '—' : <StatusBadge status={p.running ? 'running' : 'stopped'} />}
              </Td>
              <Td>
                <div className="flex flex-wrap gap-1">
                  <Button onClick={() => setShown(shown === p.name ? undefined : p.name)} aria-pressed={shown === p.name} data-testid="projection-state-toggle">
                    State
                  </Button>
                  {act && (
                    <ConfirmButton question={`Rebuild ${p.name} from the first event?`} yes="Yes, rebuild" onConfirm={() => rebuild.mutate(p.name)} disabled={rebuild.isPending} testId="projection-rebuild">
                      Rebuild
                    </ConfirmButton>
                  )}
                </div>
              </Td>
            </tr>
          ))}
        </Table>
      </Loaded>
      {shown && (
        <div className="mt-6">
          <ProjectionState key={shown} name={shown} />
        </div>
      )}
    </>
  )
}
